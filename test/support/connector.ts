/**
 * A stand-in for the Bot Framework connector that Teams provides: the bot
 * sends its replies, proactive messages and card updates here, and the test
 * reads them back. It speaks the connector's REST shape: POST and PUT under
 * /v3/conversations/{conversationId}/activities.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

export interface RecordedActivity {
  method: 'POST' | 'PUT';
  conversationId: string;
  /** The id the connector gave the activity (for PUT, the one replaced). */
  id: string;
  activity: any;
}

export interface StandInConnector {
  serviceUrl: string;
  recorded: RecordedActivity[];
  /** Waits until an activity matching the predicate arrives (or was already there). */
  waitFor(
    predicate: (r: RecordedActivity) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<RecordedActivity>;
  close(): Promise<void>;
}

export async function startConnector(): Promise<StandInConnector> {
  const recorded: RecordedActivity[] = [];
  let next = 1;
  const app = express();
  app.use(express.json({ limit: '5mb' }));
  app.post('/v3/conversations/:conversationId/activities{/:replyToId}', (req, res) => {
    const id = `activity-${next++}`;
    recorded.push({
      method: 'POST',
      conversationId: req.params.conversationId,
      id,
      activity: req.body,
    });
    res.status(201).json({ id });
  });
  app.put('/v3/conversations/:conversationId/activities/:activityId', (req, res) => {
    recorded.push({
      method: 'PUT',
      conversationId: req.params.conversationId,
      id: req.params.activityId,
      activity: req.body,
    });
    res.status(200).json({ id: req.params.activityId });
  });
  app.post('/v3/conversations', (_req, res) => {
    res.status(201).json({ id: `conversation-${next++}` });
  });

  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    serviceUrl: `http://127.0.0.1:${port}/`,
    recorded,
    async waitFor(predicate, timeoutMs = 10_000, what = 'an activity') {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = recorded.find(predicate);
        if (found) return found;
        if (Date.now() > deadline) {
          throw new Error(
            `the connector received no ${what} within ${timeoutMs} ms; it has ${JSON.stringify(recorded.map((r) => [r.method, r.conversationId, r.activity.text ?? r.activity.attachments?.[0]?.contentType]))}`,
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
