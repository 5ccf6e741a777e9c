/**
 * Downloads of recovered files: GET /downloads/<token>, where the token is a
 * signed 'download' grant for a delivery id. The delivery must still exist and
 * be unexpired; the file is decrypted from the repository and sent as an
 * attachment. Every download is audited, and its bytes count as the
 * customer's egress in the day's usage once the response has gone out.
 */
import express from 'express';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import { notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { LinkSigner } from '../core/signing.ts';
import { errorResponder } from './http-errors.ts';
import { ObjectType } from './repository/crypto.ts';
import type { Repository } from './repository/repository.ts';
import { recordUsage } from './usage.ts';

export interface DownloadRouterDeps {
  db: Db;
  log: Logger;
  signer: LinkSigner;
  repository(): Promise<Repository>;
}

export function createDownloadRouter(deps: DownloadRouterDeps): express.Router {
  const router = express.Router();
  router.get('/:token', async (req, res) => {
    const grant = deps.signer.verify(String(req.params.token), 'download');
    const delivery = await deps.db
      .selectFrom('deliveries')
      .selectAll()
      .where('id', '=', grant.subject)
      .executeTakeFirst();
    if (!delivery || delivery.expires_at.getTime() <= Date.now()) {
      throw notFound('This file is no longer available for download. Ask for the restore again.');
    }

    const repository = await deps.repository();
    const data = await repository.getObject(delivery.blob_path, ObjectType.Delivery);
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'delivery.download',
      resource: `delivery/${delivery.id}`,
      outcome: 'success',
      details: {
        customerId: delivery.customer_id,
        requestId: delivery.request_id,
        fileName: delivery.file_name,
        sizeBytes: data.length,
        ip: req.ip,
      },
    });

    res.attachment(delivery.file_name);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', String(data.length));
    res.on('finish', () => {
      recordUsage(deps.db, delivery.customer_id, { egressBytes: data.length }).catch((err) =>
        deps.log.warn({ err, deliveryId: delivery.id }, 'egress_usage_not_recorded'),
      );
    });
    res.end(data);
  });
  router.use(errorResponder(deps.log));
  return router;
}
