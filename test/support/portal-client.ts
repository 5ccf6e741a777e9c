/**
 * A browser-like client for the portal: keeps its session cookie and sends
 * forms with the session's form token, as a person's browser would.
 */

export class PortalClient {
  private cookies = new Map<string, string>();

  constructor(private readonly baseUrl: string) {}

  async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.request(path, { method: 'GET', headers });
  }

  /** Posts a form exactly as given, as a page on another site could make the browser do. */
  async postRaw(path: string, fields: Record<string, string>): Promise<Response> {
    return this.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** Posts a form, adding the form token found on the page at `formPage`. */
  async postForm(
    path: string,
    fields: Record<string, string>,
    formPage: string,
  ): Promise<Response> {
    const page = await (await this.get(formPage)).text();
    const token = /name="_token" value="([^"]+)"/.exec(page)?.[1];
    if (!token) throw new Error(`no form token on ${formPage}`);
    return this.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...fields, _token: token }).toString(),
    });
  }

  /**
   * Signs in as the person: through the OpenID provider's login page when the
   * portal offers Entra ID sign-in (the sandbox does), else with the picker.
   */
  async signIn(objectId: string, tenantId: string): Promise<void> {
    const page = await (await this.get('/portal/sign-in')).text();
    if (page.includes('/sign-in/entra')) {
      await this.signInWithOidc(objectId);
      return;
    }
    const res = await this.postForm('/portal/sign-in', { objectId, tenantId }, '/portal/sign-in');
    if (res.status !== 303) throw new Error(`sign-in answered ${res.status}: ${await res.text()}`);
  }

  /** The authorization code flow as a browser follows it: portal, login page, pick, callback. */
  async signInWithOidc(objectId: string, next = '/portal'): Promise<Response> {
    const start = await this.get(`/portal/sign-in/entra?next=${encodeURIComponent(next)}`);
    const authorize = start.headers.get('location');
    if (start.status !== 303 || !authorize)
      throw new Error(`sign-in start answered ${start.status}`);
    const login = await fetch(authorize);
    if (login.status !== 200)
      throw new Error(`login page answered ${login.status}: ${await login.text()}`);
    const picked = await fetch(authorize, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        ...Object.fromEntries(new URL(authorize).searchParams),
        login_oid: objectId,
      }).toString(),
    });
    const callback = picked.headers.get('location');
    if (picked.status !== 302 || !callback)
      throw new Error(`login answered ${picked.status}: ${await picked.text()}`);
    const url = new URL(callback);
    const done = await this.get(`${url.pathname}${url.search}`);
    if (done.status !== 303)
      throw new Error(`sign-in callback answered ${done.status}: ${await done.text()}`);
    return done;
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(`${this.baseUrl}${path}`, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
    return res;
  }
}
