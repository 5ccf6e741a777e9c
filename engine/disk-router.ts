/**
 * A restore point's disk as a read-only HTTP resource:
 *   GET|HEAD /engine/disks/<token>/disk.raw
 * The token (a signed 'disk' grant for `<restorePointId>/<diskIndex>`) sits in
 * the path because qemu's curl driver may drop query strings. Single byte
 * ranges are honoured (206, or 416 when unsatisfiable); bytes are assembled
 * and decrypted on demand, so a reader pays only for what it reads.
 */
import express, { type Request, type Response } from 'express';
import { badInput } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { LinkSigner } from '../core/signing.ts';
import type { DiskImage } from './disk-image.ts';
import { errorResponder } from './http-errors.ts';

export interface DiskRouterDeps {
  signer: LinkSigner;
  log: Logger;
  openDisk(restorePointId: string, diskIndex: number): Promise<DiskImage>;
}

export function createDiskRouter(deps: DiskRouterDeps): express.Router {
  const router = express.Router();
  const handle = async (req: Request, res: Response) => {
    const grant = deps.signer.verify(String(req.params.token), 'disk');
    const [restorePointId, index] = grant.subject.split('/');
    const disk = await deps.openDisk(restorePointId ?? '', Number(index));
    await serveRange(req, res, disk);
  };
  router.get('/disks/:token/disk.raw', handle);
  router.head('/disks/:token/disk.raw', handle);
  router.use(errorResponder(deps.log));
  return router;
}

async function serveRange(req: Request, res: Response, disk: DiskImage): Promise<void> {
  const size = disk.size;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Cache-Control', 'no-store');

  const range = parseRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    res.status(416).setHeader('Content-Range', `bytes */${size}`);
    res.end();
    return;
  }
  const [start, end] = range ?? [0, size - 1];
  if (range) {
    res.status(206).setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  res.setHeader('Content-Length', String(size === 0 ? 0 : end - start + 1));
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }

  for await (const chunk of disk.chunks(start, end)) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await drainedOrClosed(res);
  }
  res.end();
}

function drainedOrClosed(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Parses a single `bytes=` range; undefined when absent (the whole resource). */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) {
    if (header.includes(',')) throw badInput('Only a single byte range per request is supported.');
    return undefined;
  }
  let start: number;
  let end: number;
  if (match[1] === '') {
    // Suffix range: the last N bytes.
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return [start, end];
}
