/**
 * Sign-in and sign-out. With OpenID Connect configured (and always in the
 * sandbox, whose identity stand-in plays Entra ID), sign-in goes to the
 * identity provider and comes back to /sign-in/callback; without it, the
 * sandbox falls back to a picker of the seeded principals. Both start the same
 * session, so nothing behind the gate knows which method was used. Inside
 * Teams, the tab signs in with Teams' own token instead (./teams-tab.ts).
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { badInput, forbidden, isAcbaError } from '../core/errors.ts';
import { sendPage, wantsJson, type PortalContext } from './context.ts';
import {
  checkFormToken,
  currentIdentity,
  endSession,
  rememberPendingSignIn,
  startSession,
  takePendingSignIn,
} from './session.ts';
import { teamsTabRoutes } from './teams-tab.ts';
import { applyRoleClaims, resolveViewer } from './viewer.ts';

interface PickerEntry {
  objectId: string;
  tenantId: string;
  name: string;
  roles: string[];
  tenantLabel: string;
}

/** Where to go after sign-in: only paths inside the portal, never another site. */
function safeNext(req: Request, next: unknown): string {
  const base = req.baseUrl || '/';
  if (typeof next !== 'string') return base;
  if (!next.startsWith(`${req.baseUrl}/`) && next !== req.baseUrl) return base;
  if (next.startsWith('//') || next.includes('\\')) return base;
  // Dot segments and empty segments let a browser resolve the path to somewhere else.
  const segments = next
    .split(/[?#]/, 1)[0]!
    .toLowerCase()
    .replaceAll('%2e', '.')
    .split('/')
    .slice(1);
  if (segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1)))
    return base;
  if (/[\u0000-\u001f\u007f]/.test(next)) return base;
  return next;
}

async function pickerEntries(ctx: PortalContext): Promise<PickerEntry[]> {
  const [rows, names] = await Promise.all([
    ctx.db
      .selectFrom('principals')
      .selectAll()
      .orderBy('tenant_id')
      .orderBy('display_name')
      .execute(),
    ctx.db.selectFrom('customers').select(['tenant_id', 'name']).execute(),
  ]);
  const tenantNames = new Map(names.map((c) => [c.tenant_id, c.name]));
  const people = new Map<string, PickerEntry>();
  for (const row of rows) {
    const key = `${row.tenant_id}/${row.object_id}`;
    const entry = people.get(key);
    if (entry) {
      entry.roles.push(row.role);
      continue;
    }
    const tenantLabel =
      row.tenant_id === ctx.providerTenantId
        ? 'Provider'
        : (tenantNames.get(row.tenant_id) ?? 'Unknown tenant');
    people.set(key, {
      objectId: row.object_id,
      tenantId: row.tenant_id,
      name: row.display_name,
      roles: [row.role],
      tenantLabel,
    });
  }
  return [...people.values()];
}

const NO_SIGN_IN =
  'Sign-in to this portal is not available: it needs Microsoft Entra ID sign-in, which is not configured on this installation. Ask the operators.';

export function signInRoutes(ctx: PortalContext): express.Router {
  const router = express.Router();
  router.use(teamsTabRoutes(ctx));

  router.get('/sign-in', async (req, res) => {
    await sendPage(req, res, 'sign-in', {
      title: 'Sign in',
      oidc: ctx.signInMode === 'oidc',
      picker: ctx.signInMode === 'picker',
      people: ctx.signInMode === 'picker' ? await pickerEntries(ctx) : [],
      next: safeNext(req, req.query.next),
    });
  });

  router.get('/sign-in/entra', async (req, res) => {
    if (!ctx.oidc) throw forbidden(NO_SIGN_IN);
    const { url, pending } = await ctx.oidc.begin(safeNext(req, req.query.next));
    rememberPendingSignIn(req, pending);
    res.redirect(303, url);
  });

  router.get('/sign-in/callback', async (req, res) => {
    if (!ctx.oidc) throw forbidden(NO_SIGN_IN);
    const pending = takePendingSignIn(req);
    if (!pending)
      throw badInput(
        'This sign-in has expired or was started in another browser. Open the sign-in page and sign in again.',
      );
    if (typeof req.query.error === 'string') {
      ctx.log.info({ error: req.query.error }, 'portal_sign_in_declined');
      throw forbidden(
        'Microsoft Entra ID did not sign you in. Open the sign-in page and try again, or ask the operators.',
      );
    }

    const callbackUrl = new URL(ctx.oidc.redirectUri);
    callbackUrl.search = new URL(req.originalUrl, callbackUrl).search;
    let identity;
    try {
      identity = await ctx.oidc.finish(callbackUrl, pending);
    } catch (error) {
      if (isAcbaError(error)) throw error;
      ctx.log.warn({ err: error }, 'portal_sign_in_failed');
      throw forbidden(
        'The answer from Microsoft Entra ID could not be verified, so you are not signed in. Open the sign-in page and sign in again.',
      );
    }

    await applyRoleClaims(ctx.db, ctx.roleMapping, ctx.providerTenantId, identity, 'portal');
    startSession(req, { objectId: identity.objectId, tenantId: identity.tenantId, method: 'oidc' });
    ctx.log.info(
      { objectId: identity.objectId, tenantId: identity.tenantId, method: 'oidc' },
      'portal_sign_in',
    );
    res.redirect(303, safeNext(req, pending.next));
  });

  router.post('/sign-in', async (req, res) => {
    if (ctx.signInMode !== 'picker') throw forbidden(NO_SIGN_IN);
    checkFormToken(req);
    const objectId = String(req.body?.objectId ?? '');
    const tenantId = String(req.body?.tenantId ?? '');
    const principal = await ctx.db
      .selectFrom('principals')
      .select('object_id')
      .where('tenant_id', '=', tenantId)
      .where('object_id', '=', objectId)
      .executeTakeFirst();
    if (!principal)
      throw forbidden('That person is not a seeded principal. Pick someone from the list.');

    startSession(req, { objectId, tenantId, method: 'picker' });
    ctx.log.info({ objectId, tenantId, method: 'picker' }, 'portal_sign_in');
    res.redirect(303, safeNext(req, req.body?.next));
  });

  router.post('/sign-out', (req, res) => {
    checkFormToken(req);
    const identity = currentIdentity(req);
    endSession(req);
    if (identity)
      ctx.log.info({ objectId: identity.objectId, tenantId: identity.tenantId }, 'portal_sign_out');
    res.redirect(303, `${req.baseUrl}/sign-in`);
  });

  return router;
}

/** The gate: nothing behind it answers without a signed-in, known viewer. */
export function requireViewer(ctx: PortalContext) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const identity = currentIdentity(req);
    if (!identity) {
      if (wantsJson(req)) {
        res
          .status(401)
          .json({ error: 'sign_in_required', message: 'Sign in to the portal first.' });
        return;
      }
      res.redirect(303, `${req.baseUrl}/sign-in?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    res.locals.viewer = await resolveViewer(ctx.db, identity, ctx.providerTenantId);
    next();
  };
}
