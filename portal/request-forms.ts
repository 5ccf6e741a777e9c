/**
 * The portal's simple forms for file, disk, VM and SQL restore requests. The page
 * lists the customer's VMs and SQL servers that have current backups; each
 * opens its form, whose choices are that item's own restore points
 * (approvals/restore-forms.ts). A submitted form goes to createRequest, which
 * checks everything again (the requester role, the customer, the restore
 * point, the names); a refusal shows the form again with the reason.
 */
import express from 'express';
import { formTarget, type RestoreChoices } from '../approvals/index.ts';
import { AcbaError, badInput, httpStatusOf, publicMessageOf, unavailable } from '../core/errors.ts';
import { sendPage, viewerOf, type PortalContext } from './context.ts';
import { checkFormToken } from './session.ts';
import type { Viewer } from './viewer.ts';

const FORM_KINDS = ['file_restore', 'disk_restore', 'vm_restore', 'sql_restore'] as const;
type FormKind = (typeof FORM_KINDS)[number];

function formKind(value: unknown): FormKind | undefined {
  return FORM_KINDS.find((k) => k === value);
}

function actorOf(viewer: Viewer) {
  return {
    objectId: viewer.objectId,
    tenantId: viewer.tenantId,
    name: viewer.name,
    channel: 'portal' as const,
  };
}

/** Routes under /requests/new; mount before the request pages, whose `:id` would take "new". */
export function requestFormRoutes(ctx: PortalContext): express.Router {
  const router = express.Router();

  const show = async (
    req: express.Request,
    res: express.Response,
    fields: Record<string, unknown>,
    problem?: { status: number; message: string },
  ) => {
    if (!ctx.decisions)
      throw unavailable(
        'This installation takes requests in Teams only; the portal was started without the approval workflow.',
      );
    const choices = await ctx.decisions.approvals.restoreChoices(actorOf(viewerOf(res)));
    const kind = formKind(fields.kind);
    const name = typeof fields.item === 'string' ? fields.item : '';
    await sendPage(
      req,
      res,
      'request-new',
      {
        title: 'New restore request',
        choices,
        kind,
        vm: kind && kind !== 'sql_restore' ? vmOf(choices, name) : undefined,
        server: kind === 'sql_restore' ? serverOf(choices, name) : undefined,
        fields,
        problem: problem?.message,
      },
      { status: problem?.status },
    );
  };

  router.get('/requests/new', (req, res) => show(req, res, req.query));

  router.post('/requests/new', async (req, res) => {
    checkFormToken(req);
    const fields = (req.body ?? {}) as Record<string, unknown>;
    try {
      const kind = formKind(fields.kind);
      if (!kind)
        throw badInput(
          'Choose the kind of restore: file_restore, disk_restore, vm_restore or sql_restore.',
        );
      const reason = typeof fields.reason === 'string' ? fields.reason : '';
      const ticket =
        typeof fields.ticket === 'string' && fields.ticket.trim() !== ''
          ? fields.ticket
          : undefined;
      const actor = actorOf(viewerOf(res));
      const request =
        kind === 'file_restore'
          ? await ctx.decisions!.approvals.requestFileRestore(actor, {
              vmName: String(fields.vmName ?? ''),
              path: String(fields.path ?? ''),
              restorePointId:
                typeof fields.restorePointId === 'string' ? fields.restorePointId : undefined,
              reason,
              ticket,
            })
          : await ctx.decisions!.approvals.createRequest(actor, {
              kind,
              target: formTarget(kind, fields),
              reason,
              ticket,
            });
      res.redirect(303, `${req.baseUrl}/requests/${encodeURIComponent(request.id)}`);
    } catch (error) {
      if (!(error instanceof AcbaError) || !ctx.decisions) throw error;
      await show(req, res, fields, {
        status: httpStatusOf(error),
        message: publicMessageOf(error),
      });
    }
  });

  return router;
}

function vmOf(choices: RestoreChoices, name: string) {
  return choices.vms.find((v) => v.name.toLowerCase() === name.toLowerCase());
}

function serverOf(choices: RestoreChoices, name: string) {
  return choices.sqlServers.find((s) => s.name.toLowerCase() === name.toLowerCase());
}
