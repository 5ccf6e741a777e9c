/**
 * Where an exit export writes: a folder under the service's export folder, or
 * a blob container the customer owns, reached through a SAS URL that the
 * operator gives when running the export (the request names the container
 * only, so no SAS is ever stored, audited or shown on a card).
 *
 * Both kinds write a file under a temporary name and make it visible only
 * once complete, with its SHA-256 recorded, so that an interrupted export
 * resumes by skipping the files already complete.
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContainerClient } from '@azure/storage-blob';
import { badInput } from '../core/errors.ts';

/** A file the destination holds completely. */
export interface CompleteFile {
  bytes: number;
  sha256: string;
}

export interface ExportDestination {
  /** Where the files go, for messages (never with a SAS). */
  readonly description: string;
  /** The file at `name` when it was written completely, else undefined. */
  complete(name: string): Promise<CompleteFile | undefined>;
  /** Writes `data` to `name`; `finished` says the bytes and SHA-256 once every chunk was written. */
  write(
    name: string,
    data: AsyncIterable<Buffer>,
    finished: () => CompleteFile,
  ): Promise<CompleteFile>;
}

const FOLDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Checks a request's destination as written: a folder name, or a container URL without a query. */
export function checkDestination(destination: string): string {
  const text = destination.trim();
  if (FOLDER_NAME.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badInput(
      `"${text.slice(0, 80)}" is neither a folder name (letters, digits, dots, dashes, underscores) nor a blob container URL. Give one of them.`,
    );
  }
  if (url.search || url.username || url.password)
    throw badInput(
      'Give the blob container URL without its SAS or any credentials; the provider asks for a SAS when the export runs, so that it is never stored with the request.',
    );
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback))
    throw badInput(`The container URL must use https; got ${url.protocol.replace(':', '')}.`);
  if (url.pathname.split('/').filter(Boolean).length === 0)
    throw badInput(
      'The container URL names no container: add it, e.g. https://account.blob.core.windows.net/exports.',
    );
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** True when the checked destination is a blob container rather than a folder. */
export function isContainerDestination(destination: string): boolean {
  return destination.includes('://');
}

/** A folder under `root`, named by the request. */
export async function folderDestination(root: string, name: string): Promise<ExportDestination> {
  const dir = path.join(root, name);
  await fs.mkdir(dir, { recursive: true });
  const journal = path.join(dir, PROGRESS_FILE);
  const done = new Map<string, CompleteFile>();
  const text = await fs.readFile(journal, 'utf8').catch(() => '');
  for (const line of text.split('\n').filter(Boolean)) {
    try {
      const entry = JSON.parse(line) as CompleteFile & { name: string };
      done.set(entry.name, { bytes: entry.bytes, sha256: entry.sha256 });
    } catch {
      // A line cut short by a crash: that file is written again.
    }
  }

  return {
    description: dir,
    complete: async (file) => {
      const entry = done.get(file);
      if (!entry) return undefined;
      const stat = await fs.stat(path.join(dir, file)).catch(() => undefined);
      return stat?.size === entry.bytes ? entry : undefined;
    },
    write: async (file, data, finished) => {
      const target = path.join(dir, file);
      await fs.mkdir(path.dirname(target), { recursive: true });
      await pipeline(Readable.from(data), createWriteStream(`${target}.partial`));
      await fs.rename(`${target}.partial`, target);
      const result = finished();
      done.set(file, result);
      await fs.appendFile(journal, `${JSON.stringify({ name: file, ...result })}\n`);
      return result;
    },
  };
}

/** A blob container through the SAS URL the operator gave; it must be the request's container. */
export function containerDestination(destination: string, sasUrl: string): ExportDestination {
  let given: URL;
  try {
    given = new URL(sasUrl);
  } catch {
    throw badInput(
      'The SAS URL is not a URL. Give the container SAS URL, e.g. https://account.blob.core.windows.net/exports?sv=...',
    );
  }
  if (`${given.origin}${given.pathname.replace(/\/+$/, '')}` !== destination)
    throw badInput(
      `The SAS URL is for ${given.origin}${given.pathname}, but the approved request exports to ${destination}. Give a SAS for that container.`,
    );
  const container = new ContainerClient(sasUrl);

  return {
    description: destination,
    complete: async (file) => {
      const properties = await container
        .getBlockBlobClient(file)
        .getProperties()
        .catch((error: { statusCode?: number }) => {
          if (error.statusCode === 404) return undefined;
          throw error;
        });
      const sha256 = properties?.metadata?.sha256;
      return sha256 ? { bytes: properties.contentLength ?? 0, sha256 } : undefined;
    },
    write: async (file, data, finished) => {
      const blob = container.getBlockBlobClient(file);
      await blob.uploadStream(Readable.from(data), 8 * 1024 * 1024, 4);
      const result = finished();
      // The checksum marks the blob complete; a blob without one is written again on resume.
      await blob.setMetadata({ sha256: result.sha256 });
      return result;
    },
  };
}

/** Where a folder export records the files it completed. */
export const PROGRESS_FILE = '.acba-export-progress.jsonl';
