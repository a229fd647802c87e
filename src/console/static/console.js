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

  apiKeyInput.value = sessionStorage.getItem('chat-console.api-key') || '';
  apiKeyInput.addEventListener('change', () => {
    sessionStorage.setItem('chat-console.api-key', apiKeyInput.value.trim());
  });

  let conversationId = null;

  /** The credential a pane uses: the agent an API key, the customer its token (else the key). */
  function credential(role) {
    const key = apiKeyInput.value.trim();
    return role === 'customer' ? tokenInput.value.trim() || key : key;
  }

  /** One API call; resolves with the JSON body, rejects with the problem's detail. */
  async function api(role, method, path, body) {
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
      throw new Error(`${res.status}: ${detail}${code}`);
    }
    return data;
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

    /** Reads the whole history again: at start of a `reset`, when the stream could not replay. */
    pane.reload = async () => {
      const history = await api(role, 'GET', `/api/conversations/${conversationId}`);
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

  function open(id) {
    conversationId = id;
    conversationLine.textContent = `Conversation ${id}`;
    openIdInput.value = id;
    if (location.hash !== `#${id}`) {
      history.replaceState(null, '', `#${id}`);
    }
    panes.forEach((pane) => pane.follow());
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

  const fromHash = location.hash.slice(1).toLowerCase();
  if (UUID.test(fromHash)) {
    open(fromHash);
  }
})();
