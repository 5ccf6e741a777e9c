// The Teams tab's sign-in. Inside Teams: initialize teams-js, ask Teams for
// the signed-in person's token, and post it in the form's body (with the
// page's form token) to the portal, which checks it as the API checks bearer
// tokens, starts a session and redirects into the portal. Outside Teams (no
// host answers), the normal sign-in.
(() => {
  const form = document.getElementById('teams-tab');
  const status = document.getElementById('teams-tab-status');
  const initializeTimeoutMs = 5000;

  // Teams shows tabs in an iframe, or in its mobile apps' web view with a native bridge.
  const hosted = window.parent !== window || 'nativeInterface' in window;

  function withTimeout(promise, ms) {
    return Promise.race([
      promise,
      new Promise((_resolve, reject) => setTimeout(() => reject(new Error('timed out')), ms)),
    ]);
  }

  async function signIn() {
    const teams = window.microsoftTeams;
    if (!hosted || !teams) {
      location.replace(form.dataset.signIn);
      return;
    }
    try {
      await withTimeout(teams.app.initialize(), initializeTimeoutMs);
    } catch {
      location.replace(form.dataset.signIn);
      return;
    }

    try {
      form.elements.token.value = await teams.authentication.getAuthToken();
    } catch (error) {
      status.setAttribute('role', 'alert');
      status.textContent = `Teams could not sign you in to ACBA (${error.message || error}). Close the tab and open it again; if this persists, ask the operators.`;
      return;
    }
    form.submit();
  }

  signIn();
})();
