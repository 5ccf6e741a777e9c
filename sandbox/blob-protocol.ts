/**
 * The pieces of Azure Blob storage's REST protocol that the sandbox's page
 * blob endpoints share: error answers (`x-ms-error-code` and the XML error
 * body), the `Range`/`x-ms-range` header, common response headers, properties
 * and ranged downloads of a page blob kept as a file, and the page list XML
 * of Get Page Ranges.
 */
import { createReadStream } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../core/log.ts';
import type { PageRangeEntry } from './page-ranges.ts';

export const storageVersion = '2025-01-05';
export const sectorSize = 512;

/** A refusal in Azure Storage's terms: HTTP status, error code and message. */
export class StorageError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Parses `bytes=a-b` or `bytes=a-`; undefined when absent. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!match)
    throw new StorageError(400, 'InvalidRange', `The range header '${header}' is not valid.`);
  const start = Number(match[1]);
  const end = match[2] ? Math.min(Number(match[2]), size - 1) : size - 1;
  if (start >= size || end < start)
    throw new StorageError(
      416,
      'InvalidRange',
      'The range specified is invalid for the current size of the resource.',
    );
  return { start, end };
}

/** The range a Get Page Ranges request asks about (the whole blob by default); page-aligned or refused. */
export function pageListRange(req: Request, size: number): { start: number; end: number } {
  const range = parseRange(req.header('x-ms-range') ?? req.header('range'), size) ?? {
    start: 0,
    end: size - 1,
  };
  if (range.start % sectorSize !== 0 || (range.end + 1) % sectorSize !== 0) {
    throw new StorageError(
      416,
      'InvalidPageRange',
      'The page range specified is invalid: start and end+1 must be multiples of 512.',
    );
  }
  return range;
}

/** Answers Get Page Ranges with its XML body. */
export function sendPageList(res: Response, entries: PageRangeEntry[], size: number): void {
  const body = entries
    .map((entry) => {
      const tag = entry.cleared ? 'ClearRange' : 'PageRange';
      return `<${tag}><Start>${entry.start}</Start><End>${entry.end}</End></${tag}>`;
    })
    .join('');
  res
    .status(200)
    .set({ 'Content-Type': 'application/xml', 'x-ms-blob-content-length': String(size) });
  res.send(`<?xml version="1.0" encoding="utf-8"?><PageList>${body}</PageList>`);
}

/** Answers Get Blob Properties of a page blob of `size` bytes, with any extra headers (lease, metadata). */
export function sendProperties(
  res: Response,
  size: number,
  extra: Record<string, string> = {},
): void {
  res.set({
    'Content-Length': String(size),
    'Content-Type': 'application/octet-stream',
    'x-ms-blob-type': 'PageBlob',
    'x-ms-blob-sequence-number': '0',
    'x-ms-lease-state': 'available',
    'x-ms-lease-status': 'unlocked',
    'x-ms-server-encrypted': 'true',
    'Accept-Ranges': 'bytes',
    ...extra,
  });
  res.status(200).end();
}

/** Streams the requested range of a page blob's file (all of it without a range); returns the bytes sent. */
export function sendDownload(req: Request, res: Response, file: string, size: number): number {
  const range = parseRange(req.header('x-ms-range') ?? req.header('range'), size);
  res.set({
    'Content-Type': 'application/octet-stream',
    'x-ms-blob-type': 'PageBlob',
    'Accept-Ranges': 'bytes',
  });

  if (range) {
    res.status(206).set({
      'Content-Length': String(range.end - range.start + 1),
      'Content-Range': `bytes ${range.start}-${range.end}/${size}`,
    });
  } else {
    res.status(200).set('Content-Length', String(size));
  }
  if (size === 0) {
    res.end();
    return 0;
  }
  const stream = createReadStream(file, {
    start: range?.start ?? 0,
    end: range?.end ?? size - 1,
  });
  stream.on('error', (error) => res.destroy(error));
  stream.pipe(res);
  return range ? range.end - range.start + 1 : size;
}

/** Headers every answer about a blob file carries. */
export function setCommonHeaders(
  res: Response,
  stat: { mtime: Date; mtimeMs: number; birthtime: Date },
): void {
  res.set({
    'Last-Modified': stat.mtime.toUTCString(),
    ETag: `"0x${Math.floor(stat.mtimeMs * 10_000)
      .toString(16)
      .toUpperCase()}"`,
    'x-ms-creation-time': stat.birthtime.toUTCString(),
    'x-ms-request-id': randomUUID(),
    'x-ms-version': storageVersion,
    Date: new Date().toUTCString(),
  });
}

/** An error handler that answers StorageErrors as Azure Storage does and passes anything else on. */
export function storageErrorAnswer(log: Logger, event: string) {
  return (req: Request, res: Response, next: NextFunction, error: unknown): void => {
    if (!(error instanceof StorageError)) return next(error);
    const requestId = res.getHeader('x-ms-request-id') ?? randomUUID();
    log.debug({ code: error.code, status: error.status, method: req.method }, event);
    res.status(error.status).set({
      ...error.headers,
      'x-ms-error-code': error.code,
      'x-ms-request-id': String(requestId),
      'x-ms-version': storageVersion,
      'Content-Type': 'application/xml',
    });
    if (req.method === 'HEAD') return void res.end();
    const detail = error.detail
      ? `<AuthenticationErrorDetail>${escapeXml(error.detail)}</AuthenticationErrorDetail>`
      : '';
    res.send(
      `<?xml version="1.0" encoding="utf-8"?><Error><Code>${error.code}</Code><Message>${escapeXml(`${error.message}\nRequestId:${requestId}\nTime:${new Date().toISOString()}`)}</Message>${detail}</Error>`,
    );
  };
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
