// chat-client.js: a small client for ngx_chat's REST API and WebSocket.
//
// A standalone ES module with no dependencies; import it on any page:
//
//   import { ChatClient } from '/chat-client.js';
//   const chat = new ChatClient({ token, getToken: async () => fetchNewToken() });
//   chat.on('new_message', (ev) => console.log(ev.message));
//   await chat.connect();
//   await chat.send(7, 'hello');
//
// What it does for you:
// - REST calls with `Authorization: Bearer`, errors thrown as ChatError;
// - one WebSocket, reconnected with jittered exponential backoff; on each
//   connection it sends `resume` with the last seq it has seen of each
//   conversation, and it drops any event it has already seen (by
//   conversation and seq), so nothing is lost or repeated across reconnects;
// - request ids (`req`) with the answer (`ack`/`error`/`pong`/`resumed`) as a
//   promise; `send()` gives each message a `client_id` and retries it until
//   it is acknowledged (the server keeps the first of a repeated client_id);
//   refusals with `retry_after` are retried after that long;
// - token refresh: `setToken()` (or `getToken`, asked before each
//   connection and after a close for an expired token) reconnects with the
//   new token and resumes;
// - uploads with progress (XMLHttpRequest).
//
// Events: every server message by its type ('hello', 'new_message',
// 'message_updated', 'message_deleted', 'reaction_added', 'typing',
// 'presence', 'read_receipt', 'mention', 'conversation_created', 'reload',
// ...), and 'state' {state: 'connecting'|'open'|'reconnecting'|'closed'}.
// '*' hears every event as (type, event).

export class ChatError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ChatError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// events that carry no seq of the stream of their conversation
const UNSEQUENCED = new Set(['typing', 'read_receipt', 'presence', 'mention',
  'conversation_created', 'reload', 'hello', 'ack', 'error', 'pong', 'resumed']);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function randomId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

export class ChatClient {
  /**
   * @param {object} o
   * @param {string} [o.baseUrl]  origin of the server ('' = this page's)
   * @param {string} [o.apiPath]  '/api/chat'
   * @param {string} [o.wsPath]   '/ws/chat'
   * @param {string} [o.token]    a JWT
   * @param {() => Promise<string>|string} [o.getToken] asked for a token
   *        before each connection when set (a site refreshes it there)
   * @param {number} [o.requestTimeout] ms before a request without an
   *        answer is given up (default 15000)
   */
  constructor(o = {}) {
    this.baseUrl = (o.baseUrl || '').replace(/\/$/, '');
    this.apiPath = (o.apiPath || '/api/chat').replace(/\/$/, '');
    this.wsPath = o.wsPath || '/ws/chat';
    this.token = o.token || null;
    this.getToken = o.getToken || null;
    this.requestTimeout = o.requestTimeout || 15000;
    this.backoff = { base: 300, max: 15000, ...(o.backoff || {}) };
    this.WebSocketImpl = o.WebSocket || globalThis.WebSocket;
    this.listeners = new Map();
    this.seqs = new Map();          // conversation id -> last seq seen
    this.pending = new Map();       // req -> {frame, resolve, reject, retry, timer}
    this.queue = [];                // frames waiting for an open connection
    this.nextReq = 1;
    this.sendChains = new Map();    // conversation id -> its last send
    this.nextOrder = 1;             // requests are (re)sent in the order made
    this.ws = null;
    this.state = 'closed';
    this.attempt = 0;
    this.wanted = false;
    this.userId = null;
    this._timer = null;
    this._ping = null;
  }

  // ---- events ----
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) { this.listeners.get(type)?.delete(fn); }
  emit(type, ev) {
    for (const fn of this.listeners.get(type) || []) {
      try { fn(ev); } catch (e) { console.error(e); }
    }
    for (const fn of this.listeners.get('*') || []) {
      try { fn(type, ev); } catch (e) { console.error(e); }
    }
  }

  // ---- positions ----
  /** Tells the client where a conversation stands (e.g. its last_seq when
   *  it was loaded by REST); never moves a known position back. */
  track(conversationId, seq) {
    const id = String(conversationId);
    if (!this.seqs.has(id) || this.seqs.get(id) < seq) this.seqs.set(id, seq);
  }
  lastSeq(conversationId) { return this.seqs.get(String(conversationId)); }

  // ---- REST ----
  url(path) { return this.baseUrl + this.apiPath + '/' + path.replace(/^\//, ''); }

  async api(method, path, body, query) {
    let url = this.url(path);
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null && v !== '') q.set(k, v);
      }
      const s = q.toString();
      if (s) url += (url.includes('?') ? '&' : '?') + s;
    }
    for (let tries = 0; ; tries++) {
      const headers = { Authorization: `Bearer ${this.token}` };
      const init = { method, headers };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const res = await fetch(url, init);
      if (res.status === 204) return null;
      const text = await res.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch { data = null; }
      if (res.ok) return data;
      const err = data && data.error ? data.error : {};
      const retryAfter = Number(err.retry_after || res.headers.get('Retry-After')) || 0;
      if ((res.status === 429 || res.status === 503) && retryAfter && tries < 3) {
        await sleep(retryAfter * 1000);
        continue;
      }
      throw new ChatError(res.status, err.code, err.message, retryAfter);
    }
  }

  listConversations(q = {}) { return this.api('GET', 'conversations', undefined, q); }
  getConversation(id) { return this.api('GET', `conversations/${id}`); }
  createConversation(body) { return this.api('POST', 'conversations', body); }
  updateConversation(id, body) { return this.api('PATCH', `conversations/${id}`, body); }
  updateMine(id, body) { return this.api('PATCH', `conversations/${id}/me`, body); }
  markReadRest(id, seq) { return this.api('POST', `conversations/${id}/read`, seq ? { seq } : {}); }
  unread() { return this.api('GET', 'unread'); }
  members(id, q = {}) { return this.api('GET', `conversations/${id}/members`, undefined, q); }
  addMembers(id, userIds, role) {
    return this.api('POST', `conversations/${id}/members`, role ? { user_ids: userIds, role } : { user_ids: userIds });
  }
  setRole(id, userId, role) { return this.api('PATCH', `conversations/${id}/members/${encodeURIComponent(userId)}`, { role }); }
  removeMember(id, userId) { return this.api('DELETE', `conversations/${id}/members/${encodeURIComponent(userId)}`); }
  messages(id, q = {}) { return this.api('GET', `conversations/${id}/messages`, undefined, q); }
  message(id, mid) { return this.api('GET', `conversations/${id}/messages/${mid}`); }
  receipts(id, mid) { return this.api('GET', `conversations/${id}/messages/${mid}/receipts`); }
  pins(id) { return this.api('GET', `conversations/${id}/pins`); }
  pin(id, mid, on = true) { return this.api(on ? 'POST' : 'DELETE', `conversations/${id}/messages/${mid}/pin`); }
  search(q) { return this.api('GET', 'search', undefined, q); }
  presence(userIds) { return this.api('GET', 'presence', undefined, { user_ids: userIds.join(',') }); }
  setPresence(body) { return this.api('PUT', 'presence/me', body); }

  /** Downloads a file (or thumbnail) with the token: a Blob. */
  async fetchBlob(path) {
    const url = /^https?:/.test(path) ? path : this.baseUrl + path;
    const res = await fetch(url, { headers: { Authorization: `Bearer ${this.token}` } });
    if (!res.ok) throw new ChatError(res.status, 'download_failed', `download: ${res.status}`);
    return res.blob();
  }

  /** Uploads a File/Blob: resolves to the File object. onProgress(0..1).
   *  The returned promise has .abort(). */
  upload(file, { name, onProgress } = {}) {
    const xhr = new XMLHttpRequest();
    const p = new Promise((resolve, reject) => {
      const q = new URLSearchParams({ name: name || file.name || 'file' });
      xhr.open('POST', this.url('files') + '?' + q);
      xhr.setRequestHeader('Authorization', `Bearer ${this.token}`);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
      };
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status === 201 || xhr.status === 200) {
          onProgress && onProgress(1);
          resolve(data);
        } else {
          const e = data && data.error ? data.error : {};
          reject(new ChatError(xhr.status, e.code, e.message || `upload: ${xhr.status}`));
        }
      };
      xhr.onerror = () => reject(new ChatError(0, 'network', 'upload failed: network'));
      xhr.onabort = () => reject(new ChatError(0, 'aborted', 'upload aborted'));
      xhr.send(file);
    });
    p.abort = () => xhr.abort();
    return p;
  }

  // ---- WebSocket ----
  wsUrl() {
    let base = this.baseUrl;
    if (!base) base = location.origin;
    return base.replace(/^http/, 'ws') + this.wsPath;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  /** Opens the connection (and keeps it open until close()). Resolves at
   *  the first `resumed`. */
  connect() {
    this.wanted = true;
    if (!this.ws) this._open();
    if (this.state === 'open') return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.on('state', ({ state }) => {
        if (state === 'open') { off(); resolve(); }
      });
    });
  }

  close() {
    this.wanted = false;
    clearTimeout(this._timer);
    clearInterval(this._ping);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ChatError(0, 'closed', 'client closed'));
    }
    this.pending.clear();
    for (const p of this.queue) p.reject(new ChatError(0, 'closed', 'client closed'));
    this.queue = [];
    this.setState('closed');
  }

  /** A new token: later REST calls use it; the WebSocket reconnects with it
   *  and resumes (a connection lives no longer than its token). */
  setToken(token) {
    this.token = token;
    if (this.ws) this._reconnect(false);
  }

  async _open() {
    clearTimeout(this._timer);
    this.setState(this.attempt ? 'reconnecting' : 'connecting');
    if (this.getToken && (this.attempt > 0 || !this.token || this._tokenStale)) {
      try { this.token = await this.getToken(); this._tokenStale = false; } catch (e) { /* keep the old */ }
    }
    if (!this.wanted) return;
    let ws;
    try {
      // the token as the subprotocol pair: no token in URLs or logs
      ws = new this.WebSocketImpl(this.wsUrl(), ['chat.v1', `bearer.${this.token}`]);
    } catch (e) {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    let helloSeen = false;
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m.type === 'hello') {
        helloSeen = true;
        this.userId = m.user_id;
        this.emit('hello', m);
        this._start(ws);
        return;
      }
      this._dispatch(m, ws);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this._ping);
      if (e.code === 1008 || !helloSeen) this._tokenStale = true;
      this._lost();
      if (this.wanted) this._scheduleReconnect();
      else this.setState('closed');
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _start(ws) {
    const conversations = {};
    for (const [id, seq] of this.seqs) conversations[id] = seq;
    const req = this.nextReq++;
    this._rawSend(ws, { type: 'resume', req, conversations });
    const started = () => {
      this.attempt = 0;
      this.setState('open');
      // requests held while we were away
      const queued = this.queue.sort((a, b) => a.order - b.order);
      this.queue = [];
      for (const p of queued) this._transmit(p);
    };
    this.pending.set(req, {
      frame: null,
      resolve: started,
      // a refused resume (say a conversation that is no longer ours):
      // the server starts every conversation where it stands
      reject: (e) => { this.emit('resume_failed', e); started(); },
      retry: false,
      timer: null,
      internal: true,
    });
    clearInterval(this._ping);
    this._ping = setInterval(() => this._keepalive(ws), 25000);
  }

  async _keepalive(ws) {
    if (this.ws !== ws || this.state !== 'open') return;
    try {
      await this.request('ping', {}, { timeout: 10000, retry: false });
    } catch (e) {
      if (this.ws === ws && e.code === 'timeout') ws.close(4000, 'no pong');
    }
  }

  _reconnect(backoff) {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this._ping);
    if (ws) { ws.onclose = null; ws.onmessage = null; try { ws.close(1000); } catch { /* */ } }
    this._lost();
    if (backoff) this._scheduleReconnect();
    else if (this.wanted) { this.attempt = Math.max(this.attempt, 1); this._open(); }
  }

  /** The connection is gone: requests that may be repeated wait for the
   *  next one, the others fail. */
  _lost() {
    for (const [req, p] of this.pending) {
      if (p.internal) { this.pending.delete(req); continue; }
      if (p.retry && this.wanted) {
        this.pending.delete(req);
        clearTimeout(p.timer);
        p.timer = null;
        this.queue.push(p);
      } else {
        this.pending.delete(req);
        clearTimeout(p.timer);
        p.reject(new ChatError(0, 'disconnected', 'connection lost'));
      }
    }
  }

  _scheduleReconnect() {
    if (!this.wanted) return;
    this.setState('reconnecting');
    const n = this.attempt++;
    const cap = Math.min(this.backoff.max, this.backoff.base * 2 ** n);
    // "equal jitter": half fixed, half random, so clients spread out
    const delay = cap / 2 + Math.random() * cap / 2;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delay);
  }

  _rawSend(ws, frame) {
    try { ws.send(JSON.stringify(frame)); return true; } catch { return false; }
  }

  _transmit(p) {
    const ws = this.ws;
    if (!ws || this.state !== 'open' || ws.readyState !== 1) {
      this.queue.push(p);
      return;
    }
    const req = this.nextReq++;
    p.frame.req = req;
    this.pending.set(req, p);
    p.timer = setTimeout(() => {
      if (this.pending.get(req) !== p) return;
      this.pending.delete(req);
      if (p.retry && this.wanted && p.tries < 5) {
        // no answer: the connection may be dead; send again on the next
        p.tries++;
        this.queue.push(p);
        if (this.ws === ws) this._reconnect(true);
      } else {
        p.reject(new ChatError(0, 'timeout', `no answer to ${p.frame.type}`));
      }
    }, p.timeout);
    this._rawSend(ws, p.frame);
  }

  /** Sends a client message; resolves to its ack (or pong/resumed),
   *  rejects with ChatError on an error answer. With retry (the default
   *  for idempotent requests), it is repeated after a reconnect. */
  request(type, fields = {}, { timeout, retry = true } = {}) {
    return new Promise((resolve, reject) => {
      const p = {
        frame: { type, ...fields }, resolve, reject, retry, tries: 0, order: this.nextOrder++,
        timeout: timeout || this.requestTimeout, timer: null,
      };
      this._transmit(p);
    });
  }

  _dispatch(m, ws) {
    if (m.req !== undefined && m.req !== null &&
        ['ack', 'error', 'pong', 'resumed'].includes(m.type)) {
      const p = this.pending.get(m.req);
      if (p) {
        this.pending.delete(m.req);
        clearTimeout(p.timer);
        if (m.type === 'error') {
          const e = m.error || {};
          const retryAfter = Number(e.retry_after || m.retry_after) || 0;
          if (retryAfter && p.retry && p.tries < 5) {
            p.tries++;
            setTimeout(() => this._transmit(p), retryAfter * 1000);
          } else {
            p.reject(new ChatError(0, e.code, e.message, retryAfter));
          }
        } else {
          p.resolve(m);
        }
      }
      if (m.type !== 'resumed') return;
    }
    if (m.type === 'reload') {
      this.seqs.set(String(m.conversation_id), m.last_seq);
      this.emit('reload', m);
      return;
    }
    if (m.type === 'conversation_created' && m.conversation) {
      this.track(m.conversation.id, m.conversation.last_seq || 0);
    }
    // the conversation stream: deduplicated by seq (read_receipt's seq is
    // a read position, not a place in the stream)
    if (m.conversation_id !== undefined && typeof m.seq === 'number' && !UNSEQUENCED.has(m.type)) {
      const id = String(m.conversation_id);
      const known = this.seqs.get(id);
      if (known !== undefined && m.seq <= known) return;   // seen already
      this.seqs.set(id, m.seq);
    }
    this.emit(m.type, m);
  }

  // ---- actions over the WebSocket ----
  /** Sends a message, retried with one client_id until acknowledged:
   *  resolves to the Message. */
  send(conversationId, content, opts = {}) {
    const fields = {
      conversation_id: Number(conversationId), content,
      client_id: opts.clientId || randomId(),
    };
    if (opts.type) fields.message_type = opts.type;
    if (opts.replyTo) fields.reply_to = opts.replyTo;
    if (opts.mentions && opts.mentions.length) fields.mentions = opts.mentions;
    if (opts.attachments && opts.attachments.length) fields.attachments = opts.attachments;
    // one at a time per conversation: the server runs requests of one
    // connection side by side, so pipelined sends could be stored out of
    // the order they were typed in
    const key = String(conversationId);
    const prev = this.sendChains.get(key) || Promise.resolve();
    const p = prev.catch(() => {}).then(() => this.request('send_message', fields)).then((a) => a.message);
    const tail = p.catch(() => {});
    this.sendChains.set(key, tail);
    tail.then(() => { if (this.sendChains.get(key) === tail) this.sendChains.delete(key); });
    return p;
  }
  edit(messageId, content) {
    return this.request('edit_message', { message_id: messageId, content }).then((a) => a.message);
  }
  remove(messageId) { return this.request('delete_message', { message_id: messageId }); }
  react(messageId, emoji) { return this.request('add_reaction', { message_id: messageId, emoji }); }
  unreact(messageId, emoji) { return this.request('remove_reaction', { message_id: messageId, emoji }); }
  markRead(conversationId, seq) {
    const f = { conversation_id: Number(conversationId) };
    if (seq) f.seq = seq;
    return this.request('mark_read', f);
  }
  typing(conversationId, on) {
    return this.request(on ? 'typing_start' : 'typing_stop',
                        { conversation_id: Number(conversationId) }, { retry: false });
  }
  join(conversationId) { return this.request('join', { conversation_id: Number(conversationId) }); }
  leave(conversationId) { return this.request('leave', { conversation_id: Number(conversationId) }); }
  updatePresence(fields) { return this.request('update_presence', fields).then((a) => a.presence); }
  subscribePresence(userIds) {
    return this.request('presence_subscribe', { user_ids: userIds }).then((a) => a.presence);
  }
}

export default ChatClient;
