/**
 * Messages people type to the bot, and the bot being added to a conversation.
 * Unrecognized text gets the help card, never an error.
 */
import { CardFactory, MessageFactory, type TurnContext } from 'botbuilder';
import { formatUtc } from '../approvals/index.ts';
import { AcbaError, publicMessageOf } from '../core/errors.ts';
import { fileRestoreFormCard, helpCard } from './cards.ts';
import { parseCommand, type Command } from './commands.ts';
import type { BotDeps } from './deps.ts';
import { actorOf, unidentifiedReply } from './identity.ts';
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

  if (command.kind === 'help') {
    await context.sendActivity(
      MessageFactory.attachment(
        CardFactory.adaptiveCard(helpCard(`Hi ${firstName}, here is what I can do`, zoneName)),
      ),
    );
    return;
  }
  if (command.kind === 'bad_input') {
    await context.sendActivity(
      MessageFactory.attachment(
        CardFactory.adaptiveCard(helpCard(`Hi ${firstName}, here is what I can do`, zoneName)),
        command.message,
      ),
    );
    return;
  }
  await offerFileRestore(deps, context, command, zoneName);
}

async function offerFileRestore(
  deps: BotDeps,
  context: TurnContext,
  command: Extract<Command, { kind: 'restore_file' }>,
  zoneName: string,
): Promise<void> {
  const actor = actorOf(context.activity)!;
  try {
    const preview = await deps.approvals.previewFileRestore(actor, {
      vmName: command.vmName,
      path: command.path,
      at: command.at,
    });
    const askedFor = command.at
      ? `${command.dateOnly ? 'the last restore point of' : 'at or before'} ${command.atText} (${zoneName}), that is ${formatUtc(command.at)}`
      : 'the newest restore point';
    const card = fileRestoreFormCard({
      providerName: PROVIDER_NAME,
      ...preview,
      path: command.path.trim(),
      at: command.at,
      askedFor,
    });
    await context.sendActivity(MessageFactory.attachment(CardFactory.adaptiveCard(card)));
  } catch (error) {
    if (!(error instanceof AcbaError)) deps.log.error({ err: error }, 'restore_preview_failed');
    await context.sendActivity(publicMessageOf(error));
  }
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
    await context.sendActivity(
      MessageFactory.attachment(
        CardFactory.adaptiveCard(helpCard('Welcome to ACBA backups', 'UTC')),
      ),
    );
    return;
  }
  const here =
    conversationId && conversationId === deps.approvers.conversationId
      ? "This is the approvers' conversation: approval cards for restore requests will arrive here."
      : 'To restore files, write to me in a personal chat; type help there to see how.';
  await context.sendActivity(`Hello, I am ACBA, your provider's backup assistant. ${here}`);
}
