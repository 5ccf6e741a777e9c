/**
 * The operators hear of failed backups in Teams: a backup run that fails in the
 * engine reaches the real bot, which posts one card to the operators'
 * conversation on a stand-in Bot Framework connector. The card names the
 * customer and the VM and never repeats a SAS signature, and a missing or
 * unreachable operators' conversation is logged without failing anything.
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApprovals } from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { backupVm } from '../engine/backup.ts';
import type { BackupFailed, EngineNotices } from '../engine/notices.ts';
import type { JobQueue } from '../engine/queue.ts';
import type { Repository } from '../engine/repository/repository.ts';
import { startConnector, type StandInConnector } from './support/connector.ts';
import { seedContoso } from './support/contoso.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

const OPERATORS = '19:operators-channel@thread.tacv2';
const SIGNATURE = 'sig=Zm9vYmFyc2VjcmV0c2lnbmF0dXJl%3D';
const SAS_URL = `https://md-abc.blob.core.windows.net/disk/abcd?sv=2022-11-02&sr=b&se=2026-12-02T06%3A00%3A00Z&sp=r&${SIGNATURE}`;

const idleQueue: JobQueue = { enqueueFileRestore: async () => {}, enqueueBackup: async () => {} };

let database: TestDatabase;
let connector: StandInConnector;

/** A logger whose lines the test can read. */
function recordingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

/** The real bot over the test database; operators' conversation as given. */
function botNotices(log: Logger, operators: { id?: string; serviceUrl?: string }): EngineNotices {
  const approvals = createApprovals({
    db: database.db,
    log: silentLogger,
    queue: idleQueue,
    providerTenantId: 'tenant-provider',
  });
  return createBot({
    approvals,
    db: database.db,
    log,
    appType: 'MultiTenant',
    operatorsConversationId: operators.id,
    operatorsServiceUrl: operators.serviceUrl,
  }).notices;
}

/** Azure's compute client as far as a backup gets before the VM lookup fails with `message`. */
function failingCompute(message: string) {
  const client = {
    virtualMachines: {
      get: async () => {
        throw new Error(message);
      },
    },
  };
  return () => client as unknown as ComputeManagementClient;
}

/** Runs a backup of web-01 whose VM lookup fails, with the given notices; resolves once it has failed. */
async function failingBackup(notices: EngineNotices, message: string): Promise<Error> {
  const run = backupVm(
    {
      db: database.db,
      log: silentLogger,
      repository: {} as Repository,
      compute: failingCompute(message),
      notices,
    },
    'item-web-01',
    'schedule',
    { policyName: 'daily-30' },
  );
  return run.then(
    () => {
      throw new Error('the backup was expected to fail');
    },
    (error: Error) => error,
  );
}

const operatorCards = () =>
  connector.recorded.filter((r) => r.method === 'POST' && r.conversationId === OPERATORS);

beforeAll(async () => {
  database = await openTestDatabase();
  connector = await startConnector();
  await seedContoso(database.db);
}, 60_000);

afterAll(async () => {
  await connector?.close();
  await database?.dispose();
});

beforeEach(() => {
  connector.recorded.length = 0;
});

describe('a failed backup run', () => {
  it("posts one card to the operators' conversation naming the customer and the VM", async () => {
    const { log, lines } = recordingLogger();
    const notices = botNotices(log, { id: OPERATORS, serviceUrl: connector.serviceUrl });

    const error = await failingBackup(notices, 'The VM web-01 could not be read (503).');

    expect(error.message).toContain('could not be read');
    const cards = operatorCards();
    expect(cards).toHaveLength(1);
    const card = cards[0]!.activity.attachments[0].content;
    expect(Number(card.version)).toBeLessThanOrEqual(1.5);
    const text = JSON.stringify(card);
    expect(text).toContain('Backup failed: web-01 of Contoso');
    expect(text).toContain('policy daily-30');
    expect(text).toContain('The VM web-01 could not be read (503).');
    expect(lines.map((l) => l.msg)).toContain('backup_failure_card_posted');
  });

  it('carries no SAS signature when the error quoted a SAS URL', async () => {
    const notices = botNotices(silentLogger, { id: OPERATORS, serviceUrl: connector.serviceUrl });

    await failingBackup(notices, `Reading ${SAS_URL} failed: 403 AuthenticationFailed`);
    // The bot cleans what it is handed too, whoever calls it.
    const direct: BackupFailed = {
      customerId: 'contoso',
      customerName: 'Contoso',
      itemId: 'item-web-01',
      itemName: 'web-01',
      trigger: 'operator',
      restorePointId: 'rp-direct',
      kind: 'unexpected',
      message: `GET ${SAS_URL} refused, ${SIGNATURE}\n    at readBlock (engine/backup.ts:380:9)`,
      failedAt: new Date(),
    };
    await notices.backupFailed!(direct);

    const cards = operatorCards();
    expect(cards).toHaveLength(2);
    for (const { activity } of cards) {
      const text = JSON.stringify(activity);
      expect(text).toContain('https://md-abc.blob.core.windows.net/disk/abcd');
      expect(text).not.toMatch(/sig=(?!\[redacted\])/);
      expect(text).not.toContain('Zm9vYmFyc2VjcmV0c2lnbmF0dXJl');
      expect(text).not.toContain('sv=2022-11-02');
      expect(text).not.toContain('readBlock');
    }

    // Customers' staff read their own audit entries: the failure recorded there is cleaned too.
    const failures = await database.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'backup.fail')
      .execute();
    expect(failures.length).toBeGreaterThan(0);
    const recorded = JSON.stringify(failures);
    expect(recorded).toContain('https://md-abc.blob.core.windows.net/disk/abcd');
    expect(recorded).not.toContain('Zm9vYmFyc2VjcmV0c2lnbmF0dXJl');
  });

  it("is logged, and fails nothing, when no operators' conversation is configured", async () => {
    const { log, lines } = recordingLogger();
    const notices = botNotices(log, {});

    const error = await failingBackup(notices, 'The VM web-01 could not be read (503).');

    expect(error.message).toContain('could not be read');
    expect(operatorCards()).toHaveLength(0);
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'operators_conversation_unset', vm: 'web-01' }),
    );
  });

  it("is logged, and fails nothing, when the operators' conversation cannot be reached", async () => {
    const { log, lines } = recordingLogger();
    const notices = botNotices(log, { id: OPERATORS, serviceUrl: 'http://127.0.0.1:9/' });

    const error = await failingBackup(notices, 'The VM web-01 could not be read (503).');

    expect(error.message).toContain('could not be read');
    expect(lines.map((l) => l.msg)).toContain('backup_failure_card_failed');
    expect(lines.map((l) => l.msg)).not.toContain('backup_failure_card_posted');
  }, 30_000);
});
