/**
 * Messages people type to the bot, and the bot being added to a conversation.
 * Unrecognized text gets the help card, never an error.
 */
import { CardFactory, MessageFactory, type TurnContext } from 'botbuilder';
import { formatUtc, type Actor } from '../approvals/index.ts';
import { AcbaError, publicMessageOf } from '../core/errors.ts';
import { cancelRequest } from './actions.ts';
import { fileRestoreFormCard, helpCard, type Card } from './cards.ts';
import { parseCommand, type Command } from './commands.ts';
import type { BotDeps } from './deps.ts';
import { actorOf, unidentifiedReply } from './identity.ts';
import { myRequestsReport, restorePointsReport, statusReport } from './reports.ts';
import { restoreFormCard } from './restore-forms.ts';
import { timeZoneOf } from './when.ts';

const PROVIDER_NAME = 'your service provider';

export async function handleMessage(deps: BotDeps, context: TurnContext): Promise<void> {
  const activity = context.activity;
  const actor = actorOf(activity);
  if (!actor) {
    await context.sendActivity(unidentifiedReply(activity));
    return;
  }

  const zone = timeZoneOf(activity);
  const zoneName = zone ?? 'UTC';
  const command = parseCommand(activity.text, zone);
  const firstName = actor.name.split(' ')[0] ?? actor.name;
  const greeting = `Hi ${firstName}, here is what I can do`;

  switch (command.kind) {
    case 'help':
      return sendCard(context, helpCard(greeting, zoneName, command.unknown));
    case 'bad_input':
      return sendCard(context, helpCard(greeting, zoneName), command.message);
    default:
      return answer(deps, context, command.kind, () => reply(deps, actor, command, zoneName));
  }
}

/** The card (or text) that answers a command, built on the person's behalf. */
async function reply(
  deps: BotDeps,
  actor: Actor,
  command: Exclude<Command, { kind: 'help' | 'bad_input' }>,
  zoneName: string,
): Promise<Card | string> {
  switch (command.kind) {
    case 'status':
      return statusReport(deps, actor, zoneName);
    case 'restore_points':
      return restorePointsReport(deps, actor, command.itemName, zoneName);
    case 'my_requests':
      return myRequestsReport(deps, actor, zoneName, command.note);
    case 'cancel':
      return cancelRequest(deps, actor, command.requestId);
    case 'restore_file':
      return fileRestoreForm(deps, actor, command, zoneName);
    case 'restore_form':
      return restoreFormCard(deps, actor, command.form, command.name);
  }
}

/** Sends the answer; a refusal or a miss becomes its message, anything else is logged and apologized for. */
async function answer(
  deps: BotDeps,
  context: TurnContext,
  command: string,
  build: () => Promise<Card | string>,
): Promise<void> {
  let result: Card | string;
  try {
    result = await build();
  } catch (error) {
    if (!(error instanceof AcbaError))
      deps.log.error({ err: error, command }, 'bot_command_failed');
    await context.sendActivity(publicMessageOf(error));
    return;
  }
  if (typeof result === 'string') await context.sendActivity(result);
  else await sendCard(context, result);
}

async function sendCard(context: TurnContext, card: Card, text?: string): Promise<void> {
  await context.sendActivity(MessageFactory.attachment(CardFactory.adaptiveCard(card), text));
}

async function fileRestoreForm(
  deps: BotDeps,
  actor: Actor,
  command: Extract<Command, { kind: 'restore_file' }>,
  zoneName: string,
): Promise<Card> {
  const preview = await deps.approvals.previewFileRestore(actor, {
    vmName: command.vmName,
    path: command.path,
    at: command.at,
  });
  const askedFor = command.at
    ? `${command.dateOnly ? 'the last restore point of' : 'at or before'} ${command.atText} (${zoneName}), that is ${formatUtc(command.at)}`
    : 'the newest restore point';
  return fileRestoreFormCard({
    providerName: PROVIDER_NAME,
    ...preview,
    path: command.path.trim(),
    at: command.at,
    askedFor,
  });
}

/** The bot was added to a personal chat, a team or a group chat. */
export async function handleConversationUpdate(deps: BotDeps, context: TurnContext): Promise<void> {
  const activity = context.activity;
  const botAdded = (activity.membersAdded ?? []).some((m) => m.id === activity.recipient?.id);
  if (!botAdded) return;

  const conversationId = activity.conversation?.id;
  deps.log.info(
    { conversationId, conversationType: activity.conversation?.conversationType },
    'bot_installed',
  );

  if (activity.conversation?.conversationType === 'personal') {
    await sendCard(context, helpCard('Welcome to ACBA backups', 'UTC'));
    return;
  }
  const here =
    conversationId && conversationId === deps.approvers.conversationId
      ? "This is the approvers' conversation: approval cards for restore requests will arrive here."
      : conversationId && conversationId === deps.operators.conversationId
        ? "This is the operators' conversation: a card arrives here for each failed backup run."
        : 'To restore files, write to me in a personal chat; type help there to see how.';
  await context.sendActivity(`Hello, I am ACBA, your provider's backup assistant. ${here}`);
}
