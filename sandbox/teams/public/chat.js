// The sandbox Teams client: picks a seeded user, shows one conversation,
// polls the stand-in for changes and renders Adaptive Cards with the official
// renderer. Identity is chosen here only by object id; the server builds the
// activities.
(() => {
  const api = 'api';
  const state = {
    users: [],
    user: null,
    conversation: null,
    cursor: 0,
    items: new Map(),
    refreshed: new Set(),
    timer: null,
    generation: 0,
  };
  const $ = (id) => document.getElementById(id);

  // What each role does here, shown under the picker so a visitor knows whom to pick.
  const roleHints = {
    requester: 'asks ACBA for files in the chat',
    approver: 'approves or rejects requests in the Approvers channel',
    operator:
      'follows requests in the Approvers channel and failed backups in the Operators channel',
    auditor: 'reads the audit trail in the portal',
  };

  // Cards take the page's font and give fact titles (commands, disk names) room before they wrap.
  const hostConfig = new AdaptiveCards.HostConfig({
    fontFamily: '"Segoe UI", system-ui, sans-serif',
    factSet: { title: { weight: 'Bolder', maxWidth: 220 }, value: {}, spacing: 12 },
  });

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
    for (const group of organisations(state.users)) {
      const optgroup = document.createElement('optgroup');
      optgroup.label = group.label;
      for (const user of group.users) {
        const option = document.createElement('option');
        option.value = user.objectId;
        option.textContent = `${user.displayName} · ${user.role}`;
        optgroup.append(option);
      }
      $('user').append(optgroup);
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

  // The seeded users by tenant: the provider's tenant is the one whose people see the approvers channel.
  function organisations(users) {
    const groups = new Map();
    for (const user of users) {
      if (!groups.has(user.tenantId))
        groups.set(user.tenantId, { users: [], provider: false, domain: '', organization: '' });
      const group = groups.get(user.tenantId);
      group.users.push(user);
      group.provider ||= user.conversations.some((c) => c.conversationType === 'channel');
      group.domain ||= domainOf(user);
      group.organization ||= user.organization || '';
    }
    return [...groups.values()]
      .sort((a, b) => Number(a.provider) - Number(b.provider))
      .map((g) => ({
        ...g,
        label: `${g.provider ? 'Service provider' : 'Customer'} · ${g.organization || g.domain || 'tenant'}`,
      }));
  }

  function domainOf(user) {
    const at = (user.userPrincipalName || '').indexOf('@');
    return at > 0 ? user.userPrincipalName.slice(at + 1) : '';
  }

  function describeUser(user) {
    if (!user) return '';
    const group = organisations(state.users).find((g) => g.users.includes(user));
    const where = group && group.provider ? 'at the service provider' : 'at the customer';
    const who = user.userPrincipalName || user.objectId;
    const article = /^[aeiou]/.test(user.role) ? 'An' : 'A';
    return `${who}\n${article} ${user.role} ${where}: ${roleHints[user.role] || 'uses ACBA'}.`;
  }

  function selectUser(objectId) {
    state.user = state.users.find((u) => u.objectId === objectId) || null;
    $('who').textContent = describeUser(state.user);
    const nav = $('conversations');
    nav.replaceChildren();
    if (!state.user) {
      stopConversation();
      return;
    }
    nav.append(Object.assign(document.createElement('h2'), { textContent: 'Conversations' }));
    for (const conversation of state.user.conversations) {
      const button = document.createElement('button');
      button.type = 'button';
      button.append(
        Object.assign(document.createElement('span'), {
          className: 'name',
          textContent: conversation.title,
        }),
        Object.assign(document.createElement('span'), {
          className: 'kind',
          textContent:
            conversation.conversationType === 'channel'
              ? "channel of the provider's staff"
              : 'personal chat with the bot',
        }),
      );
      button.dataset.id = conversation.id;
      button.addEventListener('click', () => openConversation(conversation));
      nav.append(button);
    }
    if (!state.user.conversations.some((c) => c.conversationType === 'channel')) {
      nav.append(
        Object.assign(document.createElement('p'), {
          className: 'hint',
          textContent:
            "No Approvers or Operators channel: they are for the service provider's staff only.",
        }),
      );
    }
    openConversation(state.user.conversations[0]);
  }

  // Back to the page's first state: nobody picked, nothing polled.
  function stopConversation() {
    state.generation += 1;
    clearTimeout(state.timer);
    state.conversation = null;
    state.items.clear();
    $('messages').replaceChildren(
      emptyHint('Pick a user under "Signed in as" to see their conversations.'),
    );
    $('title').textContent = 'Pick a user to start';
    $('text').disabled = true;
    $('composer').querySelector('button').disabled = true;
  }

  async function openConversation(conversation) {
    // Each opening starts its own polling loop; a loop stops once a newer opening exists.
    const generation = ++state.generation;
    clearTimeout(state.timer);
    state.conversation = conversation;
    state.cursor = 0;
    state.items.clear();
    $('messages').replaceChildren();
    $('title').replaceChildren(
      document.createTextNode(conversation.title),
      Object.assign(document.createElement('span'), {
        className: 'as',
        textContent: `signed in as ${state.user.displayName}`,
      }),
    );
    for (const b of $('conversations').querySelectorAll('button'))
      b.classList.toggle('active', b.dataset.id === conversation.id);
    $('text').disabled = false;
    $('text').placeholder =
      conversation.conversationType === 'channel'
        ? 'Write to the channel'
        : 'Type a message, e.g. restore file /etc/nginx/nginx.conf from web-01';
    $('composer').querySelector('button').disabled = false;
    await call('POST', 'open', {
      user: state.user.objectId,
      conversationId: conversation.id,
    }).catch(showError);
    if (generation === state.generation) poll(generation);
  }

  async function poll(generation) {
    const conversation = state.conversation;
    try {
      const query = new URLSearchParams({
        user: state.user.objectId,
        conversationId: conversation.id,
        after: String(state.cursor),
      });
      const result = await call('GET', `activities?${query}`);
      if (generation !== state.generation) return;
      for (const view of result.activities) render(view);
      state.cursor = result.cursor;
    } catch (error) {
      if (generation !== state.generation) return;
      showError(error);
    }
    state.timer = setTimeout(() => poll(generation), 1000);
  }

  async function send(event) {
    event.preventDefault();
    const text = $('text').value.trim();
    if (!text) return;
    $('text').value = '';
    await call('POST', 'send', {
      user: state.user.objectId,
      conversationId: state.conversation.id,
      text,
    }).catch(showError);
  }

  function render(view) {
    const list = $('messages');
    // Follow new messages, but leave a person who scrolled up to read where they are.
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    let li = state.items.get(view.id);
    const isNew = !li;
    if (!li) {
      li = document.createElement('li');
      state.items.set(view.id, li);
      list.append(li);
    }
    li.className = view.origin;
    li.replaceChildren();

    const a = view.activity;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${view.origin === 'bot' ? 'ACBA' : (a.from && a.from.name) || 'You'} · ${new Date(a.timestamp || Date.now()).toLocaleTimeString()}`;
    li.append(meta);

    if (view.deleted) {
      li.append(
        Object.assign(document.createElement('div'), {
          className: 'bubble deleted',
          textContent: 'This message has been deleted.',
        }),
      );
      return;
    }
    if (a.text) li.append(bubble(a.text));
    for (const attachment of a.attachments || []) {
      if (attachment.contentType === 'application/vnd.microsoft.card.adaptive')
        li.append(renderCard(view, attachment.content));
    }
    if (isNew || atBottom) list.scrollTop = list.scrollHeight;
  }

  // A text message with its web addresses as links; a sentence's closing punctuation stays outside the link.
  function bubble(text) {
    const div = document.createElement('div');
    div.className = 'bubble';
    const url = /https?:\/\/[^\s<>"]+/g;
    let at = 0;
    for (const match of text.matchAll(url)) {
      const href = match[0].replace(/[.,;:!?)\]]+$/, '');
      div.append(document.createTextNode(text.slice(at, match.index)));
      div.append(
        Object.assign(document.createElement('a'), {
          href,
          textContent: href,
          target: '_blank',
          rel: 'noopener',
        }),
      );
      at = match.index + href.length;
    }
    div.append(document.createTextNode(text.slice(at)));
    return div;
  }

  function emptyHint(text) {
    return Object.assign(document.createElement('li'), { className: 'hint', textContent: text });
  }

  function renderCard(view, content) {
    const holder = document.createElement('div');
    holder.className = 'card';
    const card = new AdaptiveCards.AdaptiveCard();
    card.hostConfig = hostConfig;
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
    const listed = refresh.userIds.some(
      (id) => id === me.objectId || id === `29:sandbox-${me.objectId}`,
    );
    const key = `${view.id}|${view.changed}|${me.objectId}`;
    if (!listed || state.refreshed.has(key)) return;
    state.refreshed.add(key);
    invoke(view.id, refresh.action.verb, refresh.action.data || {}, 'automatic');
  }

  async function invoke(replyToId, verb, data, trigger, title, holder) {
    // Until the bot answers, the card's buttons are off so that a second press cannot send twice.
    if (holder) {
      holder.querySelector('.note')?.remove();
      holder.classList.add('busy');
      for (const button of holder.querySelectorAll('button')) button.disabled = true;
    }
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
      if (result.message && holder)
        holder.append(
          Object.assign(document.createElement('div'), {
            className: 'note',
            textContent: result.message,
          }),
        );
    } catch (error) {
      showError(error);
    } finally {
      if (holder) {
        holder.classList.remove('busy');
        for (const button of holder.querySelectorAll('button')) button.disabled = false;
      }
    }
  }

  function showError(error) {
    const li = document.createElement('li');
    li.className = 'bot error';
    li.append(
      Object.assign(document.createElement('div'), {
        className: 'note',
        textContent: String(error.message || error),
      }),
    );
    $('messages').append(li);
  }

  stopConversation();
  start().catch(showError);
})();
