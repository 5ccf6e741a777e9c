/**
 * The bot's forms for disk, VM and SQL restore requests: `restore disks of
 * web-01`, `restore vm web-01` and `restore databases of sql-contoso-weu`
 * answer with a form whose choice sets hold the customer's own current
 * restore points (approvals/restore-forms.ts); its button posts the fields,
 * which createRequest validates again, whatever the card offered.
 */
import { TurnContext } from 'botbuilder';
import { formTarget, resolveTarget, type Actor, type RestoreChoices } from '../approvals/index.ts';
import { canonicalJson } from '../core/canonical-json.ts';
import type { RequestRow } from '../core/db/schema.ts';
import { clip, QUOTE_LENGTH } from '../core/clip.ts';
import { badInput, notFound } from '../core/errors.ts';
import { postApprovalCard } from './approvers.ts';
import { renderCard, requestStatusCard, type Card } from './cards.ts';
import { pointerOf } from './conversations.ts';
import type { BotDeps } from './deps.ts';

export type RestoreFormKind = 'disk_restore' | 'vm_restore' | 'sql_restore';

const PROVIDER_NAME = 'your service provider';

/** The form of `kind` for the customer's VM or SQL server `name`. */
export async function restoreFormCard(
  deps: BotDeps,
  actor: Actor,
  kind: RestoreFormKind,
  name: string,
): Promise<Card> {
  const choices = await deps.approvals.restoreChoices(actor);
  return renderRestoreForm(kind, choices, name, await customerNameOf(deps, actor));
}

/** The form of `kind` for `name` from the customer's restore choices; not_found names what there is. */
export function renderRestoreForm(
  kind: RestoreFormKind,
  choices: RestoreChoices,
  name: string,
  customerName: string,
): Card {
  if (kind === 'sql_restore') {
    const server = choices.sqlServers.find((s) => s.name.toLowerCase() === name.toLowerCase());
    if (!server) throw notFound(unknownServer(choices, name));
    return renderCard('sql-restore-form', {
      providerName: PROVIDER_NAME,
      customerName,
      server: server.name,
      databases: server.databases,
      otherServers: choices.sqlServers.filter((s) => s !== server).map((s) => ({ name: s.name })),
    });
  }

  const vm = choices.vms.find((v) => v.name.toLowerCase() === name.toLowerCase());
  if (!vm) throw notFound(unknownVm(choices, name));
  return renderCard(kind === 'vm_restore' ? 'vm-restore-form' : 'disk-restore-form', {
    providerName: PROVIDER_NAME,
    customerName,
    vmName: vm.name,
    points: vm.points,
    firstPoint: vm.points[0]!.id,
    disks: vm.disks,
  });
}

/** Writes the request a form's button sent, and answers with its status card. */
export async function submitRestoreForm(
  deps: BotDeps,
  context: TurnContext,
  actor: Actor,
  data: Record<string, unknown>,
): Promise<Card> {
  const kind = String(data.kind ?? '');
  if (kind !== 'disk_restore' && kind !== 'vm_restore' && kind !== 'sql_restore')
    throw badInput(
      `This form asks for a "${clip(kind, QUOTE_LENGTH)}" restore, which I do not know. Type help to start again.`,
    );
  const target = formTarget(kind, data);
  const reason = typeof data.reason === 'string' ? data.reason : '';
  const twin = await recentTwin(deps, actor, kind, target, reason);
  if (twin)
    return requestStatusCard(
      twin,
      'You sent this request a moment ago; it waits for the approvers. Nothing new was written.',
    );
  const request = await deps.approvals.createRequest(actor, {
    kind,
    target,
    reason,
    ticket: typeof data.ticket === 'string' && data.ticket.trim() !== '' ? data.ticket : undefined,
  });

  const here = TurnContext.getConversationReference(context.activity);
  await deps.approvals.setRequesterConversation(
    request.id,
    pointerOf(here, context.activity.replyToId),
  );
  const posted = await postApprovalCard(deps, request);
  const note = posted
    ? "Sent to the provider's approvers. I will write to you here when it is decided and when the restore has run."
    : "Saved. The provider's approvers will see it in the portal; I will write to you here when it is decided.";
  return requestStatusCard(request, note);
}

/**
 * The same person's pending request of the same kind, target and reason from
 * the last few minutes: the second click of a double click (Teams sends each
 * click as its own activity, so the repeated-delivery guard does not see it).
 */
async function recentTwin(
  deps: BotDeps,
  actor: Actor,
  kind: 'disk_restore' | 'vm_restore' | 'sql_restore',
  input: unknown,
  reason: string,
): Promise<RequestRow | undefined> {
  const customer = await deps.db
    .selectFrom('customers')
    .selectAll()
    .where('tenant_id', '=', actor.tenantId)
    .executeTakeFirst();
  if (!customer || reason.trim() === '') return undefined;
  // Input that does not resolve gets its refusal from createRequest, which audits it.
  const resolved = await resolveTarget(deps.db, customer, kind, input).catch(() => undefined);
  if (!resolved) return undefined;
  const pending = await deps.approvals
    .listRequests(actor, { status: 'pending', limit: 50 })
    .catch(() => []);
  return pending.find(
    (r) =>
      r.kind === kind &&
      r.requester_object_id === actor.objectId &&
      r.reason === reason.trim() &&
      canonicalJson(r.target) === canonicalJson(resolved) &&
      Date.now() - new Date(r.created_at as unknown as string).getTime() < TWIN_WINDOW_MS,
  );
}

/** How long a repeated submission counts as the same click. */
const TWIN_WINDOW_MS = 10 * 60_000;

async function customerNameOf(deps: BotDeps, actor: Actor): Promise<string> {
  const customer = await deps.db
    .selectFrom('customers')
    .select('name')
    .where('tenant_id', '=', actor.tenantId)
    .executeTakeFirstOrThrow();
  return customer.name;
}

function unknownVm(choices: RestoreChoices, name: string): string {
  const names = choices.vms.map((v) => v.name);
  return `There is no VM named "${clip(name, QUOTE_LENGTH)}" with a current backup. ${names.length > 0 ? `VMs you can restore: ${names.join(', ')}.` : 'None of your VMs has a current backup yet.'}`;
}

function unknownServer(choices: RestoreChoices, name: string): string {
  const names = choices.sqlServers.map((s) => s.name);
  return `There is no SQL server named "${clip(name, QUOTE_LENGTH)}" with backed-up databases. ${names.length > 0 ? `Servers you can restore from: ${names.join(', ')}.` : 'None of your databases has a current backup yet.'}`;
}
