// The sandbox Teams client: picks a seeded user, shows one conversation,
// polls the stand-in for changes and renders Adaptive Cards with the official
// renderer. Identity is chosen here only by object id; the server builds the
// activities.
(() => {
  const api = 'api';
  const state = { users: [], user: null, conversation: null, cursor: 0, items: new Map(), refreshed: new Set(), timer: null };
  const $ = (id) => document.getElementById(id);

  async function call(method, path, body) {
    const response = await fetch(`${api}/${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(json.message || `HTTP ${response.status}`);
    return json;
  }

  async function start() {
    state.users = await call('GET', 'users');
    for (const user of state.users) {
      const option = document.createElement('option');
      option.value = user.objectId;
      option.textContent = `${user.displayName} (${user.role})`;
      $('user').append(option);
    }
    $('user').addEventListener('change', () => selectUser($('user').value));
    $('composer').addEventListener('submit', send);

    // ?user=<objectId> preselects a user, for links in demos and headless checks.
    const preset = new URLSearchParams(location.search).get('user');
    if (preset && state.users.some((u) => u.objectId === preset)) {
      $('user').value = preset;
      selectUser(preset);
    }
  }

  function selectUser(objectId) {
    state.user = state.users.find((u) => u.objectId === objectId) || null;
    const nav = $('conversations');
    nav.replaceChildren();
    if (!state.user) return;
    for (const conversation of state.user.conversations) {
      const button = document.createElement('button');
      button.textContent = conversation.title;
      button.dataset.id = conversation.id;
      button.addEventListener('click', () => openConversation(conversation));
      nav.append(button);
    }
    openConversation(state.user.conversations[0]);
  }

  async function openConversation(conversation) {
    state.conversation = conversation;
    state.cursor = 0;
    state.items.clear();
    $('messages').replaceChildren();
    $('title').textContent = `${conversation.title} · ${state.user.displayName}`;
    for (const b of $('conversations').children) b.classList.toggle('active', b.dataset.id === conversation.id);
    $('text').disabled = false;
    $('composer').querySelector('button').disabled = false;
    await call('POST', 'open', { user: state.user.objectId, conversationId: conversation.id }).catch(showError);
    clearTimeout(state.timer);
    poll();
  }

  async function poll() {
    const conversation = state.conversation;
    try {
      const query = new URLSearchParams({ user: state.user.objectId, conversationId: conversation.id, after: String(state.cursor) });
      const result = await call('GET', `activities?${query}`);
      if (conversation !== state.conversation) return;
      for (const view of result.activities) render(view);
      state.cursor = result.cursor;
    } catch (error) {
      showError(error);
    }
    state.timer = setTimeout(poll, 1000);
  }

  async function send(event) {
    event.preventDefault();
    const text = $('text').value.trim();
    if (!text) return;
    $('text').value = '';
    await call('POST', 'send', { user: state.user.objectId, conversationId: state.conversation.id, text }).catch(showError);
  }

  function render(view) {
    let li = state.items.get(view.id);
    if (!li) {
      li = document.createElement('li');
      state.items.set(view.id, li);
      $('messages').append(li);
    }
    li.className = view.origin;
    li.replaceChildren();

    const a = view.activity;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${view.origin === 'bot' ? 'ACBA' : (a.from && a.from.name) || 'You'} · ${new Date(a.timestamp || Date.now()).toLocaleTimeString()}`;
    li.append(meta);

    if (view.deleted) {
      li.append(Object.assign(document.createElement('div'), { className: 'bubble deleted', textContent: 'This message has been deleted.' }));
      return;
    }
    if (a.text) li.append(Object.assign(document.createElement('div'), { className: 'bubble', textContent: a.text }));
    for (const attachment of a.attachments || []) {
      if (attachment.contentType === 'application/vnd.microsoft.card.adaptive') li.append(renderCard(view, attachment.content));
    }
    $('messages').scrollTop = $('messages').scrollHeight;
  }

  function renderCard(view, content) {
    const holder = document.createElement('div');
    holder.className = 'card';
    const card = new AdaptiveCards.AdaptiveCard();
    card.onExecuteAction = (action) => {
      if (action instanceof AdaptiveCards.ExecuteAction) {
        // The renderer has already merged the card's input values into data, as Teams does.
        invoke(view.id, action.verb, action.data || {}, 'manual', action.title, holder);
      } else if (action instanceof AdaptiveCards.OpenUrlAction) {
        window.open(action.url, '_blank', 'noopener');
      }
    };
    try {
      card.parse(content);
      holder.append(card.render());
    } catch (error) {
      holder.textContent = `This card could not be rendered: ${error.message}`;
    }
    maybeRefresh(view, content);
    return holder;
  }

  // Teams refreshes a card automatically for the users its refresh section lists.
  function maybeRefresh(view, content) {
    // A card that came back from a refresh is not refreshed again, or a bot that always adds refresh would loop.
    if (view.userView) return;
    const refresh = content && content.refresh;
    if (!refresh || !refresh.action || !Array.isArray(refresh.userIds)) return;
    const me = state.user;
    const listed = refresh.userIds.some((id) => id === me.objectId || id === `29:sandbox-${me.objectId}`);
    const key = `${view.id}|${view.changed}|${me.objectId}`;
    if (!listed || state.refreshed.has(key)) return;
    state.refreshed.add(key);
    invoke(view.id, refresh.action.verb, refresh.action.data || {}, 'automatic');
  }

  async function invoke(replyToId, verb, data, trigger, title, holder) {
    try {
      const result = await call('POST', 'invoke', {
        user: state.user.objectId,
        conversationId: state.conversation.id,
        replyToId,
        verb,
        data,
        trigger,
        title,
      });
      if (result.message && holder) holder.append(Object.assign(document.createElement('div'), { className: 'note', textContent: result.message }));
    } catch (error) {
      showError(error);
    }
  }

  function showError(error) {
    const li = document.createElement('li');
    li.className = 'bot';
    li.append(Object.assign(document.createElement('div'), { className: 'note', textContent: String(error.message || error) }));
    $('messages').append(li);
  }

  start().catch(showError);
})();
