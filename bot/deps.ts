/** What the bot's handlers share: the workflow, the database, the log and proactive sending. */
import type { Approvals } from '../approvals/index.ts';
import type { Db } from '../core/db/database.ts';
import type { ConversationPointer, Customer, RequestRow } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { referenceFor, type Outbox } from './conversations.ts';

export interface BotDeps {
  approvals: Approvals;
  db: Db;
  log: Logger;
  outbox: Outbox;
  /** The bot's app id; empty in local mode. */
  botAppId: string;
  approvers: { conversationId?: string; serviceUrl?: string };
  /** The provider's operators' conversation, for failed backups. */
  operators: { conversationId?: string; serviceUrl?: string };
}

export async function customerOfRequest(db: Db, request: RequestRow): Promise<Customer> {
  return db
    .selectFrom('customers')
    .selectAll()
    .where('id', '=', request.customer_id)
    .executeTakeFirstOrThrow();
}

/** The stored reference of the conversation a pointer names; undefined when it is unknown. */
export function referenceOfPointer(deps: BotDeps, pointer: ConversationPointer) {
  return referenceFor(deps.db, pointer.conversationId, pointer.serviceUrl, deps.botAppId);
}
