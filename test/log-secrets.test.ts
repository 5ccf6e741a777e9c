/**
 * What the service log holds after real work: backups of a managed-disk VM
 * (snapshot SAS URLs), of an unmanaged-disk VM (storage tokens), a throttled
 * and a failed backup (Azure errors, which carry request URLs): JSON lines
 * with the session and task ids as fields, and never a SAS signature, an
 * account key, a bearer token or the repository's key.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../core/log.ts';
import { startSandboxEngine, type SandboxEngineWorld } from './support/sandbox-engine.ts';

let world: SandboxEngineWorld;
const lines: string[] = [];

beforeAll(async () => {
  world = await startSandboxEngine();
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    }),
  });
  const engine = await world.engine({ log, jobSessions: { retry: { baseDelayMs: 100 } } });

  await engine.backupVm(world.items['web-01']!.id, 'operator');
  await engine.backupVm(world.items['legacy-01']!.id, 'operator');
  world.sandbox.faults.inject({
    method: 'PUT',
    pathPattern: /\/snapshots\/acba-[^/]+$/,
    status: 429,
    retryAfterSeconds: 1,
    times: 1,
  });
  world.sandbox.faults.inject({
    method: 'GET',
    pathPattern: /^\/md-/,
    status: 500,
    times: 1000,
  });
  await engine.backupVm(world.items['win-01']!.id, 'operator').catch(() => undefined);
}, 600_000);

afterAll(async () => {
  await world?.dispose();
});

describe('the service log after backups, throttling and failures', () => {
  it('is JSON lines whose job lines carry the session and task ids', () => {
    expect(lines.length).toBeGreaterThan(10);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const finished = records.filter((r) => r.msg === 'task_finished');
    expect(finished.length).toBeGreaterThan(0);
    for (const record of finished) {
      expect(record.sessionId).toEqual(expect.any(String));
      expect(record.taskId).toEqual(expect.any(String));
    }
    expect(records.some((r) => r.msg === 'task_failed' || r.msg === 'task_retry')).toBe(true);
  });

  it('holds no SAS signature, account key, bearer token or key material', () => {
    const text = lines.join('\n');
    expect(text).not.toMatch(/[?&]sig=(?!REDACTED)[^&"\s]{8,}/i);
    expect(text).not.toMatch(/AccountKey=/i);
    expect(text).not.toMatch(/Bearer\s+ey/i);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\./);
    const accountKey = /AccountKey=([^;]+)/.exec(world.sandbox.repositoryConnectionString)?.[1];
    expect(accountKey).toBeTruthy();
    expect(text).not.toContain(accountKey!);
    expect(text).not.toContain(world.sandbox.servicePrincipal.clientSecret);
  });
});
