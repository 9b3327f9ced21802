// The page's state, fed by REST answers and WebSocket events.  Components
// read it and re-render when `changed` fires.

export const EDIT_WINDOW_MS = 10 * 60 * 1000;   // chat_edit_window's default

export class Store {
  constructor(client, me) {
    this.client = client;
    this.me = me;
    this.conversations = new Map();   // id -> Conversation
    this.messages = new Map();        // id -> {items, byId, hasMore, loading, loaded}
    this.threads = new Map();         // parent message id -> {items, loaded}
    this.members = new Map();         // conversation id -> [Member]
    this.names = new Map();           // user id -> display name
    this.presence = new Map();        // user id -> Presence
    this.typing = new Map();          // conversation id -> Map(user -> until)
    this.reads = new Map();           // conversation id -> Map(user -> seq)
    this.directPeer = new Map();      // direct conversation id -> user id
    this.current = null;
    this.connection = 'connecting';
    this.listeners = new Set();
    this.version = 0;
    this.notify = null;               // (title, body, conversationId) => void
    this._scheduled = false;
    this._bind();
  }

  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }
  changed() {
    if (this._scheduled) return;
    this._scheduled = true;
    queueMicrotask(() => {
      this._scheduled = false;
      this.version++;
      for (const fn of this.listeners) fn(this.version);
    });
  }

  name(id) { return this.names.get(id) || id; }

  // ---- conversations ----
  async loadConversations() {
    let cursor = null;
    const all = [];
    do {
      const page = await this.client.listConversations({ limit: 100, cursor });
      all.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && all.length < 1000);
    for (const c of all) this.putConversation(c);
    this.changed();
    // direct conversations are named by their other member
    await Promise.all(all.filter((c) => c.type === 'direct').map((c) => this.loadMembers(c.id)));
    const peers = [...new Set(this.directPeer.values())];
    if (peers.length) this.loadPresence(peers);
  }

  putConversation(c) {
    const old = this.conversations.get(c.id);
    // events carry me: null and last_message: null: keep what we know
    const merged = { ...(old || {}), ...c };
    if (!c.me && old) merged.me = old.me;
    if (c.last_message === null && old && old.last_message) merged.last_message = old.last_message;
    if (!merged.me) merged.me = { role: 'member', pinned: false, archived: false, unread_count: 0, unread_mentions: 0, last_read_seq: 0 };
    this.conversations.set(c.id, merged);
    this.client.track(c.id, c.last_seq || 0);
    return merged;
  }

  sortedConversations() {
    return [...this.conversations.values()]
      .filter((c) => !c.me.archived)
      .sort((a, b) => (b.me.pinned - a.me.pinned) ||
        String(b.last_message?.created_at || b.updated_at || '').localeCompare(
          String(a.last_message?.created_at || a.updated_at || '')) || b.id - a.id);
  }

  title(c) {
    if (!c) return '';
    if (c.title) return c.title;
    if (c.type === 'direct') {
      const peer = this.directPeer.get(c.id);
      return peer ? this.name(peer) : 'Direct message';
    }
    return `Conversation ${c.id}`;
  }

  unreadTotal() {
    let n = 0;
    for (const c of this.conversations.values()) if (!c.me.archived) n += c.me.unread_count || 0;
    return n;
  }

  async loadMembers(id) {
    const items = [];
    let cursor = null;
    do {
      const page = await this.client.members(id, { limit: 100, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < 500);
    this.members.set(id, items);
    const reads = this.reads.get(id) || new Map();
    for (const m of items) {
      if (m.name) this.names.set(m.user_id, m.name);
      if ((reads.get(m.user_id) || 0) < m.last_read_seq) reads.set(m.user_id, m.last_read_seq);
    }
    this.reads.set(id, reads);
    const c = this.conversations.get(id);
    if (c && c.type === 'direct') {
      const peer = items.find((m) => m.user_id !== this.me);
      if (peer) this.directPeer.set(id, peer.user_id);
    }
    this.changed();
    return items;
  }

  async loadPresence(ids) {
    try {
      const list = await this.client.presence(ids.slice(0, 100));
      for (const p of list) this.presence.set(p.user_id, p);
      this.changed();
    } catch (e) { console.warn('presence', e); }
  }

  // ---- messages ----
  box(id) {
    if (!this.messages.has(id)) {
      this.messages.set(id, { items: [], byId: new Map(), hasMore: true, loading: false, loaded: false });
    }
    return this.messages.get(id);
  }

  merge(id, list) {
    const box = this.box(id);
    let added = false;
    for (const m of list) {
      const old = box.byId.get(m.id);
      if (old) { Object.assign(old, m); continue; }
      box.byId.set(m.id, m);
      box.items.push(m);
      added = true;
    }
    if (added) box.items.sort((a, b) => a.seq - b.seq);
    return box;
  }

  async loadLatest(id) {
    const box = this.box(id);
    if (box.loaded || box.loading) return;
    box.loading = true;
    try {
      const page = await this.client.messages(id, { limit: 50 });
      this.merge(id, page.items);
      box.hasMore = page.items.length === 50 || !!page.next_cursor;
      box.loaded = true;
    } finally {
      box.loading = false;
      this.changed();
    }
  }

  async loadOlder(id) {
    const box = this.box(id);
    if (box.loading || !box.hasMore || !box.items.length) return false;
    box.loading = true;
    this.changed();
    try {
      const page = await this.client.messages(id, { before: box.items[0].seq, limit: 50 });
      this.merge(id, page.items);
      box.hasMore = page.items.length === 50;
      return page.items.length > 0;
    } finally {
      box.loading = false;
      this.changed();
    }
  }

  async reload(id) {
    this.messages.delete(id);
    this.threads.clear();
    if (this.current === id) await this.loadLatest(id);
    try { this.putConversation(await this.client.getConversation(id)); } catch { /* gone */ }
    this.changed();
  }

  find(messageId) {
    for (const box of this.messages.values()) {
      const m = box.byId.get(messageId);
      if (m) return m;
    }
    return null;
  }

  /** Every copy we hold of a message: history and thread lists. */
  each(messageId, fn) {
    const seen = new Set();
    const visit = (m) => { if (m && m.id === messageId && !seen.has(m)) { seen.add(m); fn(m); } };
    for (const box of this.messages.values()) visit(box.byId.get(messageId));
    for (const t of this.threads.values()) {
      for (const m of t.items) visit(m);
      visit(t.parent);
    }
  }

  async loadThread(parent) {
    const t = { parent, items: [], loaded: false };
    this.threads.set(parent.id, t);
    this.changed();
    const items = [];
    let cursor = null;
    do {
      const page = await this.client.messages(parent.conversation_id, { thread: parent.id, limit: 100, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < 1000);
    for (const m of items) if (!t.items.some((x) => x.id === m.id)) t.items.push(m);
    t.items.sort((a, b) => a.seq - b.seq);
    t.loaded = true;
    this.changed();
  }

  canEdit(m) {
    return m.sender_id === this.me && !m.is_deleted && m.type !== 'system' &&
      Date.now() - new Date(m.created_at).getTime() < EDIT_WINDOW_MS;
  }

  myRole(id) { return this.conversations.get(id)?.me?.role || 'member'; }

  canModerate(id) {
    const c = this.conversations.get(id);
    return c?.type === 'direct' || ['owner', 'admin', 'moderator'].includes(this.myRole(id));
  }

  canPost(id) {
    const c = this.conversations.get(id);
    if (!c || c.is_archived) return false;
    return c.type !== 'channel' || ['owner', 'admin'].includes(this.myRole(id));
  }

  typingUsers(id) {
    const t = this.typing.get(id);
    if (!t) return [];
    const now = Date.now();
    return [...t].filter(([, until]) => until > now).map(([u]) => u);
  }

  /** Who has read up to seq (others than me). */
  seenBy(id, seq) {
    const reads = this.reads.get(id);
    if (!reads) return [];
    return [...reads].filter(([u, s]) => u !== this.me && s >= seq).map(([u]) => u);
  }

  // ---- events ----
  _bind() {
    const c = this.client;
    c.on('state', ({ state }) => { this.connection = state; this.changed(); });
    c.on('new_message', (ev) => this.onNewMessage(ev));
    c.on('message_updated', (ev) => {
      this.each(ev.message.id, (m) => Object.assign(m, ev.message, { reactions: m.reactions }));
      this.changed();
    });
    c.on('message_deleted', (ev) => {
      this.each(ev.message_id, (m) => Object.assign(m, {
        is_deleted: true, content: null, attachments: [], mentions: [], reactions: [],
      }));
      this.changed();
    });
    const react = (ev, delta) => {
      this.each(ev.message_id, (m) => {
        const list = (m.reactions || []).map((r) => ({ ...r }));
        let r = list.find((x) => x.emoji === ev.emoji);
        if (!r) { r = { emoji: ev.emoji, count: 0, me: false }; list.push(r); }
        r.count += delta;
        if (ev.user_id === this.me) r.me = delta > 0;
        m.reactions = list.filter((x) => x.count > 0);
      });
      this.changed();
    };
    c.on('reaction_added', (ev) => react(ev, 1));
    c.on('reaction_removed', (ev) => react(ev, -1));
    const pin = (ev, on) => { this.each(ev.message_id, (m) => { m.is_pinned = on; }); this.changed(); };
    c.on('message_pinned', (ev) => pin(ev, true));
    c.on('message_unpinned', (ev) => pin(ev, false));
    c.on('conversation_updated', (ev) => { this.putConversation(ev.conversation); this.changed(); });
    c.on('conversation_created', async (ev) => {
      this.putConversation(ev.conversation);
      this.changed();
      if (ev.conversation.type === 'direct') {
        await this.loadMembers(ev.conversation.id);
        const peer = this.directPeer.get(ev.conversation.id);
        if (peer) this.loadPresence([peer]);
      }
    });
    c.on('member_added', (ev) => {
      const conv = this.conversations.get(ev.conversation_id);
      if (ev.user_id === this.me && !conv) {
        c.getConversation(ev.conversation_id).then((x) => { this.putConversation(x); this.changed(); });
      } else if (conv) {
        conv.member_count = (conv.member_count || 0) + 1;
      }
      if (this.members.has(ev.conversation_id)) this.loadMembers(ev.conversation_id);
      this.changed();
    });
    c.on('member_removed', (ev) => {
      if (ev.user_id === this.me) {
        this.conversations.delete(ev.conversation_id);
        if (this.current === ev.conversation_id) this.current = null;
      } else if (this.members.has(ev.conversation_id)) {
        this.loadMembers(ev.conversation_id);
      }
      this.changed();
    });
    c.on('member_updated', (ev) => {
      const conv = this.conversations.get(ev.conversation_id);
      if (conv && ev.user_id === this.me) conv.me = { ...conv.me, role: ev.role };
      const list = this.members.get(ev.conversation_id);
      const m = list && list.find((x) => x.user_id === ev.user_id);
      if (m) m.role = ev.role;
      this.changed();
    });
    c.on('typing', (ev) => {
      if (ev.user_id === this.me) return;
      if (!this.typing.has(ev.conversation_id)) this.typing.set(ev.conversation_id, new Map());
      const t = this.typing.get(ev.conversation_id);
      if (ev.is_typing) t.set(ev.user_id, Date.now() + 6000);
      else t.delete(ev.user_id);
      this.changed();
      setTimeout(() => this.changed(), 6100);
    });
    c.on('read_receipt', (ev) => {
      if (!this.reads.has(ev.conversation_id)) this.reads.set(ev.conversation_id, new Map());
      const r = this.reads.get(ev.conversation_id);
      if ((r.get(ev.user_id) || 0) < ev.seq) r.set(ev.user_id, ev.seq);
      if (ev.user_id === this.me) {
        const conv = this.conversations.get(ev.conversation_id);
        if (conv && ev.seq >= (conv.last_seq || 0)) {
          conv.me = { ...conv.me, unread_count: 0, unread_mentions: 0, last_read_seq: ev.seq };
        }
      }
      this.changed();
    });
    c.on('presence', (ev) => { this.presence.set(ev.user_id, ev); this.changed(); });
    c.on('mention', (ev) => {
      const conv = this.conversations.get(ev.conversation_id);
      if (this.notify && ev.message && ev.message.sender_id !== this.me) {
        this.notify(`${this.name(ev.message.sender_id)} mentioned you in ${this.title(conv)}`,
                    ev.message.content || '', ev.conversation_id);
      }
    });
    c.on('reload', (ev) => this.reload(ev.conversation_id));
  }

  isVisible(id) {
    return this.current === id && typeof document !== 'undefined' && !document.hidden;
  }

  onNewMessage(ev) {
    const m = ev.message;
    const id = ev.conversation_id;
    let conv = this.conversations.get(id);
    if (!conv) {
      // a conversation we did not know yet
      this.client.getConversation(id).then((x) => { this.putConversation(x); this.changed(); }).catch(() => {});
      conv = this.putConversation({ id, type: 'group', title: null, last_seq: ev.seq });
    }
    conv.last_seq = Math.max(conv.last_seq || 0, ev.seq);
    conv.last_message = m;
    const box = this.messages.get(id);
    if (box && box.loaded) this.merge(id, [m]);
    if (m.reply_to) {
      const t = this.threads.get(m.reply_to);
      if (t && !t.items.some((x) => x.id === m.id)) t.items.push(m);
      this.each(m.reply_to, (p) => { p.reply_count = (p.reply_count || 0) + 1; });
    }
    if (m.sender_id === this.me) {
      conv.me = { ...conv.me, unread_count: 0, unread_mentions: 0, last_read_seq: m.seq };
      const r = this.reads.get(id) || new Map();
      r.set(this.me, m.seq);
      this.reads.set(id, r);
    } else {
      const t = this.typing.get(id);
      if (t) t.delete(m.sender_id);
      if (!this.isVisible(id)) {
        const mentioned = (m.mentions || []).includes(this.me);
        conv.me = {
          ...conv.me,
          unread_count: (conv.me.unread_count || 0) + 1,
          unread_mentions: (conv.me.unread_mentions || 0) + (mentioned ? 1 : 0),
        };
        if (conv.type === 'direct' && !mentioned && this.notify) {
          this.notify(this.name(m.sender_id), m.content || '(attachment)', id);
        }
      }
    }
    this.changed();
  }
}
