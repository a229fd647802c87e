// The live console: plain JavaScript, no dependencies. Every text from the server is set
// with textContent, never parsed as HTML.
'use strict';

(() => {
  const $ = (selector) => document.querySelector(selector);
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const apiKeyInput = $('#api-key');
  const tokenInput = $('#customer-token');
  const openIdInput = $('#open-id');
  const statusLine = $('#status');
  const conversationLine = $('#conversation');
  const agentNameInput = $('#agent-name');

  apiKeyInput.value = sessionStorage.getItem('chat-console.api-key') || '';
  apiKeyInput.addEventListener('change', () => {
    sessionStorage.setItem('chat-console.api-key', apiKeyInput.value.trim());
  });
  // Not a secret, and the same agent next time: kept across sessions.
  agentNameInput.value = localStorage.getItem('chat-console.agent-name') || '';
  agentNameInput.addEventListener('change', () => {
    localStorage.setItem('chat-console.agent-name', agentNameInput.value.trim());
  });

  let conversationId = null;

  /**
   * The credential a pane uses: the agent an API key, the customer its token (else the key).
   * A customer token is `<conversationId>.<secret>`: one for another conversation (the one
   * started before a row of the inbox was opened) is left aside for the key.
   */
  function credential(role) {
    const key = apiKeyInput.value.trim();
    const token = tokenInput.value.trim();
    if (
      role === 'customer' &&
      token &&
      (!conversationId || token.startsWith(`${conversationId}.`))
    ) {
      return token;
    }
    return key;
  }

  /** One API call; resolves with the JSON body, rejects with the problem's detail. */
  async function api(role, method, path, body) {
    return (await call(role, method, path, body)).data;
  }

  /**
   * One API call; resolves with the JSON body and the seq of the answer's ETag
   * (`"<life>.<seq>"`, or null), rejects with an Error that says the status and the
   * problem's detail, and carries them (`status`, `problem`).
   */
  async function call(role, method, path, body) {
    const headers = {};
    const secret = credential(role);
    if (secret) {
      headers.Authorization = `Bearer ${secret}`;
    }
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const detail = data && data.detail ? data.detail : res.statusText;
      const code = data && data.code ? ` (${data.code})` : '';
      const error = new Error(`${res.status}: ${detail}${code}`);
      error.status = res.status;
      error.problem = data || {};
      throw error;
    }
    const etag = /^(?:W\/)?"\d+\.(\d+)"$/.exec(res.headers.get('ETag') || '');
    return { data, seq: etag ? Number(etag[1]) : null };
  }

  const NAMES = { customer: 'Customer', agent: 'Agent' };
  /** How often a pane renews its typing signal while its input changes (the TTL is longer). */
  const TYPING_RENEW_MS = 2_000;

  function formatTime(ms) {
    return new Date(ms).toLocaleTimeString([], {
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  }

  function makePane(role) {
    const root = $(`#${role}`);
    const list = root.querySelector('.messages');
    const paneStatus = root.querySelector('.pane-status');
    const form = root.querySelector('.composer');
    const input = form.querySelector('input');
    const typingLine = root.querySelector('.typing');
    const other = role === 'customer' ? 'agent' : 'customer';
    const pane = {
      role,
      state: 'idle',
      messages: new Map(),
      deleted: new Set(),
      source: null,
      lastRead: { customer: 0, agent: 0 },
      /** The highest seq of a message from the other side, and the last one reported read. */
      newest: 0,
      reported: 0,
      typingTimer: null,
      typingSentAt: 0,
    };

    pane.setState = (state, text) => {
      pane.state = state;
      pane.text = text || state;
      paneStatus.dataset.state = state;
      paneStatus.textContent = text || state;
      updateStatusLine();
    };

    pane.render = () => {
      const sorted = [...pane.messages.values()].sort(
        (a, b) => a.timestamp - b.timestamp || a.seq - b.seq,
      );
      // "Read" goes under the last of this pane's own messages the other side has read.
      let readSeq = 0;
      for (const message of sorted) {
        if (message.sender === role && message.seq <= pane.lastRead[other]) {
          readSeq = Math.max(readSeq, message.seq);
        }
      }
      const items = sorted.map((message) => {
        const item = document.createElement('li');
        item.className = message.sender === role ? 'message mine' : 'message';
        item.dataset.id = message.id;
        item.dataset.sender = message.sender;
        const meta = document.createElement('div');
        meta.className = 'meta';
        const who = document.createElement('span');
        who.textContent = `${message.sender} · ${formatTime(message.timestamp)} · #${message.seq}`;
        meta.append(who);
        if (role === 'agent') {
          const remove = document.createElement('button');
          remove.type = 'button';
          remove.className = 'delete';
          remove.textContent = 'delete';
          remove.setAttribute('aria-label', `Delete message ${message.seq}`);
          remove.addEventListener('click', () => deleteMessage(message.id));
          meta.append(remove);
        }
        const text = document.createElement('div');
        text.className = 'text';
        text.textContent = message.content;
        item.append(meta, text);
        if (message.seq === readSeq) {
          const read = document.createElement('div');
          read.className = 'read';
          read.textContent = 'Read';
          item.append(read);
        }
        return item;
      });
      list.replaceChildren(...items);
      list.scrollTop = list.scrollHeight;
    };

    pane.add = (message) => {
      if (!pane.deleted.has(message.id)) {
        pane.messages.set(message.id, message);
        if (message.sender === other && message.seq > pane.newest) {
          pane.newest = message.seq;
          pane.reportRead();
        }
        pane.render();
      }
    };

    /** Tells the server how far this side has read, while the page is visible. */
    pane.reportRead = () => {
      if (document.visibilityState !== 'visible' || pane.newest <= pane.reported) {
        return;
      }
      const seq = pane.newest;
      pane.reported = seq;
      api(role, 'POST', `/api/conversations/${conversationId}/read`, { sender: role, seq }).catch(
        () => {
          pane.reported = 0; // tried again with the next message, or when the page shows
        },
      );
    };

    pane.read = (receipt) => {
      if (receipt.seq > pane.lastRead[receipt.sender]) {
        pane.lastRead[receipt.sender] = receipt.seq;
        pane.render();
      }
    };

    /** Shows "Agent is typing…" (or Customer) until the signal expires or stops. */
    pane.typing = (signal) => {
      if (signal.sender !== other) {
        return;
      }
      clearTimeout(pane.typingTimer);
      const left = Math.min(signal.expiresAt - Date.now(), 30_000);
      if (!signal.typing || left <= 0) {
        typingLine.hidden = true;
        typingLine.textContent = '';
        return;
      }
      typingLine.textContent = `${NAMES[other]} is typing…`;
      typingLine.hidden = false;
      pane.typingTimer = setTimeout(() => pane.typing({ ...signal, typing: false }), left);
    };

    /** Says this side is typing (renewed at most every TYPING_RENEW_MS), or stopped. */
    const sendTyping = (typing) => {
      if (!conversationId) {
        return;
      }
      const now = Date.now();
      if (typing && now - pane.typingSentAt < TYPING_RENEW_MS) {
        return;
      }
      if (!typing && pane.typingSentAt === 0) {
        return; // said nothing yet
      }
      pane.typingSentAt = typing ? now : 0;
      api(role, 'POST', `/api/conversations/${conversationId}/typing`, {
        sender: role,
        typing,
      }).catch(() => undefined); // a lost indicator is harmless
    };
    input.addEventListener('input', () => sendTyping(input.value.trim() !== ''));

    pane.remove = (messageId) => {
      pane.deleted.add(messageId);
      pane.messages.delete(messageId);
      pane.render();
    };

    /** The conversation's state changed (seq, status, assignee, …): only the agent pane cares. */
    pane.updated = () => undefined;

    /** Reads the whole history again: at start of a `reset`, when the stream could not replay. */
    pane.reload = async () => {
      const id = conversationId;
      const { data: history, seq } = await call(role, 'GET', `/api/conversations/${id}`);
      if (seq !== null) {
        pane.updated({ ...history, seq }, id);
      }
      pane.messages.clear();
      pane.lastRead = { ...history.lastRead };
      history.messages.forEach((message) => pane.add(message));
      pane.render();
    };

    pane.close = () => {
      if (pane.source) {
        pane.source.close();
        pane.source = null;
      }
    };

    /**
     * Follows the conversation from its first change (the server replays what its buffer
     * holds, or says `reset`). EventSource reconnects by itself and sends Last-Event-ID, so
     * nothing is missed; a header cannot be set on it, so the credential goes as access_token.
     */
    pane.follow = () => {
      pane.close();
      pane.messages.clear();
      pane.deleted.clear();
      pane.lastRead = { customer: 0, agent: 0 };
      pane.newest = 0;
      pane.reported = 0;
      pane.typing({ sender: other, typing: false, expiresAt: 0 });
      pane.render();
      const params = new URLSearchParams({ lastEventId: '0' });
      const secret = credential(role);
      if (secret) {
        params.set('access_token', secret);
      }
      const source = new EventSource(`/api/conversations/${conversationId}/events?${params}`);
      pane.source = source;
      pane.setState('connecting', 'connecting…');
      source.onopen = () => pane.setState('connected');
      source.onerror = () => {
        if (pane.source !== source) {
          return;
        }
        if (source.readyState === EventSource.CONNECTING) {
          pane.setState('reconnecting', 'reconnecting…');
        } else {
          // Refused (401, 404, …): ask again to say why.
          pane.close();
          api(role, 'GET', `/api/conversations/${conversationId}`).then(
            () => pane.setState('error', 'stream closed'),
            (error) => pane.setState('error', error.message),
          );
        }
      };
      source.addEventListener('message.created', (event) => pane.add(JSON.parse(event.data)));
      source.addEventListener('message.deleted', (event) =>
        pane.remove(JSON.parse(event.data).messageId),
      );
      source.addEventListener('conversation.read', (event) => pane.read(JSON.parse(event.data)));
      source.addEventListener('typing', (event) => pane.typing(JSON.parse(event.data)));
      source.addEventListener('conversation.updated', (event) =>
        pane.updated(JSON.parse(event.data)),
      );
      source.addEventListener('reset', () => {
        pane.reload().catch((error) => pane.setState('error', error.message));
      });
      source.addEventListener('conversation.evicted', () => {
        pane.close();
        pane.setState('evicted');
      });
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const content = input.value;
      if (!conversationId || content.trim() === '') {
        return;
      }
      try {
        const message = await api(role, 'POST', `/api/conversations/${conversationId}/messages`, {
          sender: role,
          content,
        });
        input.value = '';
        sendTyping(false);
        pane.add(message); // the stream brings it too; the id makes it one
      } catch (error) {
        setStatus('error', `Could not send: ${error.message}`);
      }
    });

    return pane;
  }

  const panes = [makePane('customer'), makePane('agent')];

  document.addEventListener('visibilitychange', () => panes.forEach((pane) => pane.reportRead()));

  function setStatus(state, text) {
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  function updateStatusLine() {
    const states = panes.map((pane) => pane.state);
    if (states.includes('evicted')) {
      setStatus(
        'evicted',
        'Evicted: the conversation was inactive too long and is gone. Start a new one.',
      );
    } else if (states.includes('error')) {
      const failing = panes.find((pane) => pane.state === 'error');
      setStatus(
        'error',
        `The ${failing.role} pane cannot follow the conversation: ${failing.text}`,
      );
    } else if (states.includes('reconnecting')) {
      setStatus('reconnecting', 'Reconnecting… messages sent meanwhile will be replayed.');
    } else if (states.every((state) => state === 'connected')) {
      setStatus('connected', 'Connected: both panes update live.');
    } else if (states.includes('connecting')) {
      setStatus('connecting', 'Connecting…');
    }
  }

  async function deleteMessage(messageId) {
    try {
      await api('agent', 'DELETE', `/api/conversations/${conversationId}/messages/${messageId}`);
      panes.forEach((pane) => pane.remove(messageId));
    } catch (error) {
      setStatus('error', `Could not delete: ${error.message}`);
    }
  }

  // The open conversation's state in the agent pane: its status and assignee, Claim, Resolve.

  /** A name the server takes as an assignee (`none` and `any` are the list's own words). */
  const PRINCIPAL_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
  const assignmentText = $('#agent .assignment-text');
  const assignmentNote = $('#agent .assignment-note');
  const claimButton = $('#claim');
  const resolveButton = $('#resolve');
  /** What the agent pane shows of the open conversation's state, and the seq it is from. */
  let held = null;

  function showNote(text) {
    assignmentNote.textContent = text;
    assignmentNote.hidden = !text;
  }

  function renderAssignment() {
    if (!conversationId || !held) {
      assignmentText.textContent = conversationId ? 'Loading…' : 'No conversation open.';
      delete assignmentText.dataset.status;
      claimButton.disabled = true;
      resolveButton.disabled = true;
      return;
    }
    const me = agentNameInput.value.trim();
    let who = 'unassigned';
    if (held.assignee !== null) {
      who = held.assignee === me ? `assigned to you (${me})` : `assigned to ${held.assignee}`;
    }
    assignmentText.textContent = `${held.status} · ${who}`;
    assignmentText.dataset.status = held.status;
    claimButton.disabled = held.assignee !== null && held.assignee === me;
    resolveButton.disabled = held.status === 'resolved';
  }

  /**
   * Shows a state of conversation `id` (from its stream, a GET, an answer or the inbox feed)
   * unless the pane shows a later one: every change takes the next seq.
   */
  function applyState(id, state) {
    if (id !== conversationId || typeof state.seq !== 'number' || (held && state.seq < held.seq)) {
      return;
    }
    held = {
      seq: state.seq,
      status: state.status,
      assignee: 'assignee' in state ? state.assignee : held ? held.assignee : null,
    };
    renderAssignment();
  }

  panes[1].updated = (state, id = conversationId) => applyState(id, state);

  async function loadAssignment(id) {
    try {
      const { data, seq } = await call('agent', 'GET', `/api/conversations/${id}`);
      if (seq !== null) {
        applyState(id, { ...data, seq });
      }
    } catch (error) {
      if (id === conversationId) {
        assignmentText.textContent = `State unknown: ${error.message}`;
      }
    }
  }

  /** The agent name, after saying what is wrong with it (and where to type it) if anything. */
  function agentNameOrSay() {
    const name = agentNameInput.value.trim();
    if (name === '') {
      showNote('Enter your agent name above first: Claim assigns the conversation to it.');
    } else if (!PRINCIPAL_ID.test(name) || name === 'none' || name === 'any') {
      showNote('An agent name is 1 to 128 letters, digits or . _ : @ - (and not "none" or "any").');
    } else {
      localStorage.setItem('chat-console.agent-name', name);
      return name;
    }
    agentNameInput.focus();
    return null;
  }

  /** Claim or Resolve: one state change of the open conversation, its refusal said in the pane. */
  async function changeState(id, method, path, body, failure) {
    showNote('');
    try {
      const { data } = await call('agent', method, path, body);
      applyState(id, data);
    } catch (error) {
      if (id === conversationId) {
        showNote(failure(error));
      }
    }
  }

  claimButton.addEventListener('click', () => {
    const id = conversationId;
    const name = id && agentNameOrSay();
    if (name) {
      void changeState(id, 'POST', `/api/conversations/${id}/claim`, { assignee: name }, (error) =>
        error.problem.code === 'already_assigned'
          ? `Not claimed: assigned to ${error.problem.assignee}.`
          : `Could not claim: ${error.message}`,
      );
    }
  });

  resolveButton.addEventListener('click', () => {
    const id = conversationId;
    if (id) {
      void changeState(
        id,
        'PATCH',
        `/api/conversations/${id}`,
        { status: 'resolved' },
        (error) => `Could not resolve: ${error.message}`,
      );
    }
  });

  agentNameInput.addEventListener('input', renderAssignment);

  // The inbox: the open conversations, live from the inbox feed.

  /** The statuses the inbox lists: those still to be dealt with (snoozed ones come back on waking). */
  const INBOX_STATUSES = ['open', 'pending'];
  const INBOX_PAGE = 200;
  /** The inbox lists this many at most (it is a console, not the agent tool). */
  const INBOX_MAX = 1000;
  /** The longest wait between attempts to follow the feed when the server cannot serve it. */
  const INBOX_RETRY_MAX_MS = 60_000;
  const inboxList = $('#inbox .inbox-rows');
  const inboxEmpty = $('#inbox .inbox-empty');
  const inboxStatus = $('#inbox .inbox-status');
  const inbox = {
    /** Every conversation the feed or a list told of, by id (the inbox shows the open ones). */
    rows: new Map(),
    source: null,
    /** The list under way (its number), and the ids the feed changed meanwhile. */
    listing: 0,
    touched: null,
    listed: false,
    truncated: false,
    renderTimer: null,
    retryTimer: null,
    retryMs: 0,
  };

  function setInboxState(state, text) {
    inboxStatus.dataset.state = state;
    inboxStatus.textContent = text;
  }

  /** Takes a conversation's summary unless a later one is known: every change takes a seq. */
  function takeRow(row) {
    const known = inbox.rows.get(row.id);
    if (known && known.seq > row.seq) {
      return;
    }
    inbox.rows.set(row.id, row);
    if (inbox.touched) {
      inbox.touched.add(row.id);
    }
    applyState(row.id, row);
    scheduleInboxRender();
  }

  function dropRow(id) {
    inbox.rows.delete(id);
    if (inbox.touched) {
      inbox.touched.add(id);
    }
    scheduleInboxRender();
  }

  /**
   * Lists the open conversations (on `reset`: at connect, and when the feed may have missed
   * changes). What the feed tells while the pages are read is newer than the pages or as new:
   * it is kept over them.
   */
  async function listInbox() {
    const listing = ++inbox.listing;
    inbox.touched = new Set();
    const fresh = new Map();
    let cursor = null;
    try {
      do {
        const params = new URLSearchParams({
          status: INBOX_STATUSES.join(','),
          limit: String(INBOX_PAGE),
        });
        if (cursor) {
          params.set('cursor', cursor);
        }
        const page = await api('agent', 'GET', `/api/conversations?${params}`);
        if (listing !== inbox.listing) {
          return;
        }
        page.conversations.forEach((row) => fresh.set(row.id, row));
        cursor = page.nextCursor;
      } while (cursor && fresh.size < INBOX_MAX);
    } catch (error) {
      if (listing === inbox.listing) {
        inbox.touched = null;
        setInboxState('error', `cannot list: ${error.message}`);
      }
      return;
    }
    for (const id of inbox.touched) {
      const row = inbox.rows.get(id);
      const listed = fresh.get(id);
      if (!row) {
        fresh.delete(id);
      } else if (!listed || row.seq >= listed.seq) {
        fresh.set(id, row);
      }
    }
    inbox.rows = fresh;
    inbox.touched = null;
    inbox.listed = true;
    inbox.truncated = cursor !== null;
    inbox.retryMs = 0;
    const row = conversationId && fresh.get(conversationId);
    if (row) {
      applyState(row.id, row);
    }
    setInboxState('live', inbox.truncated ? `live · the first ${INBOX_MAX}` : 'live');
    renderInbox();
  }

  /**
   * Follows the inbox feed (the API key as access_token, as EventSource sends no header). No
   * replay: every `reset` means list again. EventSource reconnects by itself after a drop; a
   * refusal closes it, and the list's answer says why.
   */
  function connectInbox() {
    if (inbox.source) {
      inbox.source.close();
    }
    clearTimeout(inbox.retryTimer);
    inbox.listing += 1; // a list under way is for the old feed
    inbox.touched = null;
    const params = new URLSearchParams();
    const key = credential('agent');
    if (key) {
      params.set('access_token', key);
    }
    const query = params.toString();
    const source = new EventSource(`/api/conversations/events${query ? `?${query}` : ''}`);
    inbox.source = source;
    setInboxState('connecting', 'connecting…');
    source.addEventListener('reset', () => {
      setInboxState('listing', 'listing…');
      void listInbox();
    });
    const take = (event) => takeRow(JSON.parse(event.data));
    source.addEventListener('conversation.created', take);
    source.addEventListener('conversation.updated', take);
    source.addEventListener('conversation.evicted', (event) =>
      dropRow(JSON.parse(event.data).conversationId),
    );
    source.onerror = () => {
      if (inbox.source !== source) {
        return;
      }
      if (source.readyState === EventSource.CONNECTING) {
        setInboxState('reconnecting', 'reconnecting…');
        return;
      }
      source.close();
      inbox.source = null;
      const retry = () => {
        inbox.retryMs = Math.min(Math.max(inbox.retryMs * 2, 1_000), INBOX_RETRY_MAX_MS);
        inbox.retryTimer = setTimeout(connectInbox, inbox.retryMs);
      };
      api('agent', 'GET', '/api/conversations?limit=1').then(retry, (error) => {
        setInboxState('error', error.message);
        if (error.status === 429 || error.status >= 500) {
          retry(); // unavailable for now (the store, the stream caps): try again later
        } else {
          // Not allowed (no key, a wrong one): show nothing it may not see.
          inbox.rows.clear();
          inbox.listed = false;
          renderInbox();
        }
      });
    };
  }

  function scheduleInboxRender() {
    if (inbox.renderTimer === null) {
      inbox.renderTimer = setTimeout(renderInbox, 0);
    }
  }

  /** The queue first, longest waiting first; then the others, latest activity first. */
  function inboxOrder(a, b) {
    if (a.waitingSince !== b.waitingSince) {
      if (a.waitingSince === null) {
        return 1;
      }
      if (b.waitingSince === null) {
        return -1;
      }
      return a.waitingSince - b.waitingSince;
    }
    return b.lastActivityAt - a.lastActivityAt || (a.id < b.id ? -1 : 1);
  }

  function waitedText(since) {
    const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
    if (seconds < 60) {
      return `waiting ${seconds} s`;
    }
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) {
      return `waiting ${minutes} min`;
    }
    const hours = Math.floor(minutes / 60);
    if (hours < 24) {
      return `waiting ${hours} h ${minutes % 60} min`;
    }
    return `waiting ${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  const PREVIEW_CHARACTERS = 80;

  function previewOf(row) {
    if (!row.lastMessage) {
      return 'No messages yet.';
    }
    const characters = Array.from(row.lastMessage.content.replace(/\s+/g, ' ').trim());
    const text = characters.slice(0, PREVIEW_CHARACTERS).join('');
    const more = characters.length > PREVIEW_CHARACTERS ? '…' : '';
    return `${row.lastMessage.sender}: ${text}${more}`;
  }

  function span(className, text) {
    const element = document.createElement('span');
    element.className = className;
    if (text !== undefined) {
      element.textContent = text;
    }
    return element;
  }

  function inboxItem(row) {
    const item = document.createElement('li');
    item.className = 'inbox-item';
    item.dataset.id = row.id;
    item.dataset.status = row.status;
    if (row.id === conversationId) {
      item.setAttribute('aria-current', 'true');
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'inbox-row';
    button.addEventListener('click', () => open(row.id));

    const customer = row.customer || {};
    const unreadCount = (row.unread && row.unread.agent) || 0;
    const unread = span('unread', `${unreadCount} unread`);
    unread.dataset.count = String(unreadCount);
    const top = span('inbox-line');
    top.append(
      span('who', `${customer.name || customer.externalId || 'Customer'} · ${row.id.slice(0, 8)}`),
      unread,
    );

    const waited = span('waited');
    if (row.waitingSince === null) {
      waited.textContent = 'not waiting';
    } else {
      waited.dataset.since = String(row.waitingSince);
      waited.textContent = waitedText(row.waitingSince);
      waited.title = `since ${formatTime(row.waitingSince)}`;
    }
    const meta = span('inbox-line inbox-meta');
    meta.append(
      waited,
      span('assignee', row.assignee === null ? 'unassigned' : `assigned to ${row.assignee}`),
      span('row-status', row.status),
    );
    button.append(top, span('preview', previewOf(row)), meta);
    item.append(button);
    return item;
  }

  function renderInbox() {
    clearTimeout(inbox.renderTimer);
    inbox.renderTimer = null;
    const rows = [...inbox.rows.values()]
      .filter((row) => INBOX_STATUSES.includes(row.status))
      .sort(inboxOrder);
    // Rows are made anew: keep the keyboard on the row it was on.
    const focused = document.activeElement && document.activeElement.closest('.inbox-item');
    const items = rows.map(inboxItem);
    inboxList.replaceChildren(...items);
    inboxEmpty.hidden = !inbox.listed || rows.length > 0;
    const again = focused && items.find((item) => item.dataset.id === focused.dataset.id);
    if (again) {
      again.querySelector('button').focus();
    }
  }

  setInterval(() => {
    for (const waited of inboxList.querySelectorAll('.waited[data-since]')) {
      waited.textContent = waitedText(Number(waited.dataset.since));
    }
  }, 1_000);

  apiKeyInput.addEventListener('change', connectInbox);

  function open(id) {
    conversationId = id;
    conversationLine.textContent = `Conversation ${id}`;
    openIdInput.value = id;
    if (location.hash !== `#${id}`) {
      history.replaceState(null, '', `#${id}`);
    }
    held = null;
    showNote('');
    renderAssignment();
    panes.forEach((pane) => pane.follow());
    void loadAssignment(id);
    const row = inbox.rows.get(id);
    if (row) {
      applyState(id, row);
    }
    scheduleInboxRender();
  }

  $('#start').addEventListener('click', async () => {
    try {
      const created = await api('agent', 'POST', '/api/conversations');
      tokenInput.value = created.customerToken || '';
      open(created.id);
    } catch (error) {
      setStatus('error', `Could not start a conversation: ${error.message}`);
    }
  });

  $('#open').addEventListener('click', () => {
    const id = openIdInput.value.trim().toLowerCase();
    if (!UUID.test(id)) {
      setStatus(
        'error',
        'A conversation id is a UUID such as 3f2b9c1e-8a4d-4c7e-9b1a-2d5e6f7a8b9c.',
      );
      return;
    }
    open(id);
  });

  connectInbox();

  const fromHash = location.hash.slice(1).toLowerCase();
  if (UUID.test(fromHash)) {
    open(fromHash);
  }
})();
