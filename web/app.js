// The ngx_chat web page: mount(element, options) renders the chat.
// See docs/web.md for embedding it; main.js mounts it for index.html.

import { html, render, useState, useEffect, useLayoutEffect, useRef, useMemo, useCallback } from './vendor/preact-htm.js';
import { ChatClient } from './chat-client.js';
import { Store } from './store.js';
import { richText, findMentions, dayKey, dayLabel, timeLabel, shortTime, sizeLabel, jwtClaims, initials, hue } from './util.js';

const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
const STATUSES = ['online', 'away', 'busy', 'invisible'];

function useStore(store) {
  const [, set] = useState(0);
  useEffect(() => store.subscribe(set), [store]);
}

// ---------------------------------------------------------------- files

const blobUrls = new Map();   // path -> Promise<object URL>
function blobUrl(client, path) {
  if (!blobUrls.has(path)) {
    const p = client.fetchBlob(path).then((b) => URL.createObjectURL(b));
    p.catch(() => blobUrls.delete(path));
    blobUrls.set(path, p);
  }
  return blobUrls.get(path);
}

/** An image whose bytes need the token: fetched, shown from a blob URL. */
function AuthImage({ client, path, alt, onClick, className }) {
  const [src, setSrc] = useState(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    blobUrl(client, path).then((u) => live && setSrc(u), () => live && setFailed(true));
    return () => { live = false; };
  }, [path]);
  if (failed) return html`<span class="img-failed">${alt} (not available)</span>`;
  if (!src) return html`<span class="img-loading" aria-label="loading image"></span>`;
  return html`<img class=${className} src=${src} alt=${alt} onClick=${onClick} />`;
}

async function download(client, file) {
  const blob = await client.fetchBlob(file.url);
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = file.name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function Attachment({ client, file, openLightbox }) {
  if (file.kind === 'image') {
    const path = file.thumbnail_url || file.url;
    return html`<figure class="attachment image">
      <button class="image-button" aria-label=${`Open image ${file.name}`}
              onClick=${() => openLightbox(file)}>
        <${AuthImage} client=${client} path=${path} alt=${file.name} className="preview" />
      </button>
    </figure>`;
  }
  return html`<div class="attachment file">
    <span class="file-icon" aria-hidden="true">📄</span>
    <span class="file-name">${file.name}</span>
    <span class="file-size">${sizeLabel(file.size || 0)}</span>
    <button class="link" onClick=${() => download(client, file)}>Download</button>
  </div>`;
}

function Lightbox({ client, file, close }) {
  const ref = useRef();
  useEffect(() => { ref.current && ref.current.focus(); }, []);
  return html`<div class="lightbox" role="dialog" aria-modal="true" aria-label=${file.name}
                   onClick=${(e) => e.target === e.currentTarget && close()}>
    <div class="lightbox-bar">
      <span>${file.name}</span>
      <button onClick=${() => download(client, file)}>Download</button>
      <button ref=${ref} onClick=${close} aria-label="Close">✕</button>
    </div>
    <${AuthImage} client=${client} path=${file.url} alt=${file.name} className="full" />
  </div>`;
}

// ---------------------------------------------------------------- bits

function Avatar({ id, name, presence, small }) {
  const st = presence ? presence.status : null;
  return html`<span class=${'avatar' + (small ? ' small' : '')} style=${{ "--h": String(hue(id)) }} aria-hidden="true">
    ${initials(name || id)}
    ${st && html`<span class=${'dot ' + st} title=${st}></span>`}
  </span>`;
}

function PresenceDot({ presence }) {
  const st = presence ? presence.status : 'offline';
  return html`<span class=${'dot inline ' + st} role="img" aria-label=${st} title=${st}></span>`;
}

function preview(store, m) {
  if (!m) return '';
  if (m.is_deleted) return 'Message deleted';
  const who = m.sender_id === store.me ? 'You' : store.name(m.sender_id);
  const text = m.content || (m.attachments && m.attachments.length ? '📎 ' + m.attachments[0].name : '');
  return `${who}: ${text}`;
}

// ---------------------------------------------------------------- sidebar

function ConversationList({ store, open, showArchived }) {
  const list = showArchived
    ? [...store.conversations.values()].filter((c) => c.me.archived)
    : store.sortedConversations();
  if (!list.length) {
    return html`<p class="empty">${showArchived ? 'No archived conversations.' : 'No conversations yet. Start one with “New”.'}</p>`;
  }
  return html`<ul class="conv-list" aria-label="Conversations">
    ${list.map((c) => {
      const peer = store.directPeer.get(c.id);
      const pres = peer ? store.presence.get(peer) : null;
      const unread = c.me.unread_count || 0;
      const mentions = c.me.unread_mentions || 0;
      const title = store.title(c);
      return html`<li key=${c.id}>
        <button class=${'conv-item' + (store.current === c.id ? ' active' : '') + (unread ? ' has-unread' : '')}
                data-id=${c.id} aria-current=${store.current === c.id ? 'true' : undefined}
                onClick=${() => open(c.id)}>
          <${Avatar} id=${peer || String(c.id)} name=${title} presence=${c.type === 'direct' ? (pres || { status: 'offline' }) : null} />
          <span class="conv-text">
            <span class="conv-title">
              ${c.me.pinned && html`<span class="pin" title="Pinned" aria-label="pinned">📌</span>`}
              ${c.type === 'channel' ? '# ' : ''}${title}
            </span>
            <span class="conv-preview">${preview(store, c.last_message)}</span>
          </span>
          <span class="conv-meta">
            <span class="conv-time">${shortTime(c.last_message?.created_at)}</span>
            <span class="badges">
              ${mentions > 0 && html`<span class="badge mention" aria-label=${`${mentions} mentions`}>@</span>`}
              ${unread > 0 && html`<span class="badge unread" aria-label=${`${unread} unread`}>${unread}</span>`}
            </span>
          </span>
        </button>
      </li>`;
    })}
  </ul>`;
}

function MyStatus({ store, client }) {
  const mine = store.presence.get(store.me);
  const [status, setStatus] = useState(mine?.status || 'online');
  const [text, setText] = useState(mine?.custom_status || '');
  const save = async (st, custom) => {
    try {
      const p = await client.updatePresence({ status: st, custom_status: custom || null });
      if (p) store.presence.set(store.me, p);
      store.changed();
    } catch (e) { console.warn(e); }
  };
  return html`<div class="my-status">
    <${Avatar} id=${store.me} name=${store.name(store.me)} presence=${{ status }} />
    <div class="my-status-fields">
      <strong class="me-name">${store.name(store.me)}</strong>
      <div class="row">
        <label class="sr-only" for="my-status-select">My status</label>
        <select id="my-status-select" value=${status}
                onChange=${(e) => { setStatus(e.target.value); save(e.target.value, text); }}>
          ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
        <label class="sr-only" for="my-status-text">Custom status</label>
        <input id="my-status-text" placeholder="Set a status…" maxlength="140" value=${text}
               onInput=${(e) => setText(e.target.value)}
               onKeyDown=${(e) => { if (e.key === 'Enter') { e.preventDefault(); save(status, text); e.target.blur(); } }}
               onBlur=${() => save(status, text)} />
      </div>
    </div>
  </div>`;
}

// ---------------------------------------------------------------- messages

function Reactions({ store, client, m }) {
  if (!m.reactions || !m.reactions.length) return null;
  return html`<div class="reactions">
    ${m.reactions.map((r) => html`<button class=${'reaction' + (r.me ? ' mine' : '')} aria-pressed=${r.me ? 'true' : 'false'}
        data-emoji=${r.emoji}
        aria-label=${`${r.emoji} ${r.count}`}
        onClick=${() => (r.me ? client.unreact(m.id, r.emoji) : client.react(m.id, r.emoji)).catch(alertError)}>
      <span>${r.emoji}</span> <span class="count">${r.count}</span></button>`)}
  </div>`;
}

function MessageActions({ store, client, m, onThread, onEdit }) {
  const [picker, setPicker] = useState(false);
  const [confirm, setConfirm] = useState(false);
  if (m.is_deleted) return null;
  const own = m.sender_id === store.me;
  const mod = store.canModerate(m.conversation_id);
  return html`<div class="actions" role="toolbar" aria-label="Message actions">
    <button class="act-react" aria-label="Add reaction" aria-expanded=${picker ? 'true' : 'false'} onClick=${() => setPicker(!picker)}>☺</button>
    ${picker && html`<span class="picker">${QUICK_EMOJI.map((e) => html`<button aria-label=${`React ${e}`} data-emoji=${e}
        onClick=${() => { setPicker(false); client.react(m.id, e).catch(alertError); }}>${e}</button>`)}</span>`}
    ${onThread && html`<button class="act-reply" aria-label="Reply in thread" onClick=${() => onThread(m)}>↩</button>`}
    ${store.canEdit(m) && html`<button class="act-edit" aria-label="Edit" onClick=${() => onEdit(m)}>✎</button>`}
    ${mod && html`<button class="act-pin" aria-label=${m.is_pinned ? 'Unpin' : 'Pin'}
        onClick=${() => client.pin(m.conversation_id, m.id, !m.is_pinned).catch(alertError)}>📌</button>`}
    ${(own || mod) && (confirm
      ? html`<button class="act-delete-confirm danger" onClick=${() => { setConfirm(false); client.remove(m.id).catch(alertError); }}>Delete?</button>`
      : html`<button class="act-delete" aria-label="Delete" onClick=${() => setConfirm(true)}>🗑</button>`)}
  </div>`;
}

function Message({ store, client, m, compact, onThread, onEdit, openLightbox, parent, highlight }) {
  const mine = m.sender_id === store.me;
  const name = store.name(m.sender_id);
  return html`<li class=${'msg' + (compact ? ' compact' : '') + (mine ? ' mine' : '') + (m.is_deleted ? ' deleted' : '') + (highlight ? ' highlight' : '')}
      data-id=${m.id} data-seq=${m.seq} tabindex="0">
    ${!compact && html`<${Avatar} id=${m.sender_id} name=${name} presence=${null} />`}
    <div class="msg-body">
      ${!compact && html`<div class="msg-head">
        <span class="sender">${name}</span>
        <time datetime=${m.created_at} title=${new Date(m.created_at).toLocaleString()}>${timeLabel(m.created_at)}</time>
        ${m.is_pinned && html`<span class="pinned-tag">📌 pinned</span>`}
      </div>`}
      ${parent !== undefined && m.reply_to && html`<button class="reply-quote link" onClick=${() => parent && onThread && onThread(parent)}>
        ↪ ${parent ? `${store.name(parent.sender_id)}: ${parent.is_deleted ? 'deleted message' : (parent.content || '📎').slice(0, 80)}` : 'a reply in a thread'}
      </button>`}
      ${m.is_deleted
        ? html`<div class="content tombstone">This message was deleted.</div>`
        : html`<div class="content" dir="auto">${richText(m.content, store.me)}${m.is_edited && html` <span class="edited">(edited)</span>`}</div>`}
      ${!m.is_deleted && m.attachments && m.attachments.length > 0 && html`<div class="attachments">
        ${m.attachments.map((f) => html`<${Attachment} key=${f.id} client=${client} file=${f} openLightbox=${openLightbox} />`)}
      </div>`}
      <${Reactions} store=${store} client=${client} m=${m} />
      ${onThread && m.reply_count > 0 && !m.reply_to && html`<button class="thread-link link" onClick=${() => onThread(m)}>
        ${m.reply_count} ${m.reply_count === 1 ? 'reply' : 'replies'}</button>`}
    </div>
    <${MessageActions} store=${store} client=${client} m=${m} onThread=${onThread} onEdit=${onEdit} />
  </li>`;
}

function ReadStatus({ store, client, convId, m }) {
  const seen = store.seenBy(convId, m.seq);
  const [delivered, setDelivered] = useState(false);
  useEffect(() => {
    if (seen.length) return;
    let live = true;
    const t = setTimeout(() => client.receipts(convId, m.id)
      .then((r) => live && setDelivered((r.delivered_to || []).length > 0 || (r.read_by || []).length > 0))
      .catch(() => {}), 800);
    return () => { live = false; clearTimeout(t); };
  }, [m.id, seen.length]);
  const text = seen.length ? `Seen by ${seen.map((u) => store.name(u)).join(', ')}`
    : delivered ? 'Delivered' : 'Sent';
  return html`<li class="read-status" aria-live="polite">${text}</li>`;
}

function MessageList({ store, client, convId, onThread, onEdit, openLightbox, highlight }) {
  const box = store.box(convId);
  const ref = useRef();
  const stick = useRef(true);
  const anchor = useRef(null);
  useEffect(() => { stick.current = true; }, [convId]);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (anchor.current !== null && !box.loading) {
      el.scrollTop = el.scrollHeight - anchor.current;
      anchor.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
    // fill the view: older history while it does not scroll yet
    if (box.loaded && box.hasMore && !box.loading && el.scrollHeight <= el.clientHeight + 10) {
      anchor.current = el.scrollHeight - el.scrollTop;
      store.loadOlder(convId);
    }
  });
  useEffect(() => {
    if (!highlight || !ref.current) return;
    const el = ref.current.querySelector(`[data-id="${highlight}"]`);
    if (el) { stick.current = false; el.scrollIntoView({ block: 'center' }); }
  }, [highlight, box.items.length]);
  const onScroll = () => {
    const el = ref.current;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (el.scrollTop < 120 && box.hasMore && !box.loading && box.loaded) {
      anchor.current = el.scrollHeight - el.scrollTop;
      store.loadOlder(convId);
    }
  };
  const items = [];
  let prev = null;
  const lastMine = [...box.items].reverse().find((m) => m.sender_id === store.me && !m.is_deleted);
  for (const m of box.items) {
    if (!prev || dayKey(prev.created_at) !== dayKey(m.created_at)) {
      items.push(html`<li class="day" key=${'d' + m.seq} role="separator"><span>${dayLabel(m.created_at)}</span></li>`);
      prev = null;
    }
    const compact = prev && prev.sender_id === m.sender_id && !m.reply_to && !prev.is_deleted &&
      new Date(m.created_at) - new Date(prev.created_at) < 5 * 60 * 1000;
    const parent = m.reply_to ? (box.byId.get(m.reply_to) || null) : undefined;
    items.push(html`<${Message} key=${m.id} store=${store} client=${client} m=${m} compact=${compact}
      parent=${parent} onThread=${onThread} onEdit=${onEdit} openLightbox=${openLightbox} highlight=${highlight === m.id} />`);
    if (lastMine && m.id === lastMine.id) {
      items.push(html`<${ReadStatus} key="status" store=${store} client=${client} convId=${convId} m=${m} />`);
    }
    prev = m;
  }
  return html`<div class="messages" ref=${ref} onScroll=${onScroll}
                   onLoadCapture=${() => { if (stick.current && ref.current) ref.current.scrollTop = ref.current.scrollHeight; }}>
    ${box.loading && html`<div class="loading-older">Loading…</div>`}
    ${box.loaded && !box.hasMore && html`<div class="history-start">This is the start of the conversation.</div>`}
    <ol class="message-list" aria-label="Messages" aria-live="polite">${items}</ol>
  </div>`;
}

function TypingLine({ store, convId }) {
  const users = store.typingUsers(convId);
  const text = !users.length ? '' : users.length === 1 ? `${store.name(users[0])} is typing…`
    : users.length === 2 ? `${store.name(users[0])} and ${store.name(users[1])} are typing…`
    : 'Several people are typing…';
  return html`<div class="typing" aria-live="polite">${text}</div>`;
}

// ---------------------------------------------------------------- composer

function Composer({ store, client, convId, replyTo, editing, setEditing, onFiles, uploads, placeholder, autofocus }) {
  const [text, setText] = useState('');
  const [sugg, setSugg] = useState(null);    // {items, index, start}
  const ref = useRef();
  const typingAt = useRef(0);
  const draftKey = `${convId}:${replyTo || ''}`;
  const drafts = useRef(new Map());
  useEffect(() => {
    setText(drafts.current.get(draftKey) || '');
    if (autofocus && ref.current && matchMedia('(min-width: 701px)').matches) ref.current.focus();
  }, [draftKey]);
  useEffect(() => {
    if (editing) { setText(editing.content || ''); ref.current && ref.current.focus(); }
  }, [editing]);
  const caret = useRef(null);       // where the caret goes once text is rendered
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = Math.min(el.scrollHeight, 200) + 'px';
    if (caret.current !== null) {
      el.focus();
      el.setSelectionRange(caret.current, caret.current);
      caret.current = null;
    }
  }, [text]);

  const memberIds = () => (store.members.get(convId) || []).map((m) => m.user_id);
  const stopTyping = () => {
    if (typingAt.current) { typingAt.current = 0; client.typing(convId, false).catch(() => {}); }
  };
  const update = (value, pos) => {
    setText(value);
    if (!editing) drafts.current.set(draftKey, value);
    const before = value.slice(0, pos);
    const m = before.match(/(?:^|\s)@([\w.\-]*)$/);
    if (m) {
      const q = m[1].toLowerCase();
      const items = (store.members.get(convId) || [])
        .filter((x) => x.user_id !== store.me &&
          (x.user_id.toLowerCase().startsWith(q) || (x.name || '').toLowerCase().startsWith(q)))
        .slice(0, 6);
      setSugg(items.length ? { items, index: 0, start: pos - m[1].length - 1 } : null);
    } else {
      setSugg(null);
    }
    if (editing) return;
    if (value.trim()) {
      if (Date.now() - typingAt.current > 3000) {
        typingAt.current = Date.now();
        client.typing(convId, true).catch(() => {});
      }
    } else {
      stopTyping();
    }
  };
  const complete = (member) => {
    const at = ref.current.selectionStart;
    const value = text.slice(0, sugg.start) + '@' + member.user_id + ' ' + text.slice(at);
    setSugg(null);
    setText(value);
    drafts.current.set(draftKey, value);
    caret.current = sugg.start + member.user_id.length + 2;
  };
  const submit = async () => {
    const content = text.trim();
    if (editing) {
      const m = editing;
      setEditing(null);
      setText(drafts.current.get(draftKey) || '');
      if (content && content !== m.content) {
        try { await client.edit(m.id, content); } catch (e) { alertError(e); }
      }
      return;
    }
    if (!content) return;
    setText('');
    drafts.current.delete(draftKey);
    stopTyping();
    try {
      await client.send(convId, content, { replyTo, mentions: findMentions(content, memberIds()) });
    } catch (e) {
      setText(content);
      alertError(e);
    }
  };
  const onKeyDown = (e) => {
    if (sugg) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const n = sugg.items.length;
        setSugg({ ...sugg, index: (sugg.index + (e.key === 'ArrowDown' ? 1 : n - 1)) % n });
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); complete(sugg.items[sugg.index]); return; }
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); setSugg(null); return; }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); return; }
    if (e.key === 'Escape' && editing) {
      e.preventDefault(); e.stopPropagation();
      setEditing(null); setText(drafts.current.get(draftKey) || '');
      return;
    }
    if (e.key === 'ArrowUp' && !text && !editing) {
      const box = store.box(convId);
      const list = replyTo ? (store.threads.get(replyTo)?.items || []) : box.items;
      const last = [...list].reverse().find((m) => m.sender_id === store.me && store.canEdit(m));
      if (last) { e.preventDefault(); setEditing(last); setText(last.content || ''); }
    }
  };
  const onPaste = (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) { e.preventDefault(); onFiles(files, replyTo); }
  };
  const fileInput = useRef();
  const id = `composer-${convId}-${replyTo || 'main'}`;
  if (!store.canPost(convId)) {
    return html`<div class="composer readonly">${store.conversations.get(convId)?.is_archived
      ? 'This conversation is archived (read-only).' : 'Only the owner and admins post in this channel.'}</div>`;
  }
  return html`<div class="composer-wrap">
    ${uploads && uploads.length > 0 && html`<ul class="uploads" aria-label="Uploads">
      ${uploads.map((u) => html`<li key=${u.key} class=${'upload' + (u.error ? ' failed' : '')}>
        <span class="upload-name">${u.name}</span>
        ${u.error ? html`<span class="upload-error">${u.error}</span>`
          : html`<progress max="100" value=${Math.round(u.progress * 100)} aria-label=${`Uploading ${u.name}`}></progress>`}
      </li>`)}
    </ul>`}
    ${editing && html`<div class="editing-bar">Editing message — Enter saves, Esc cancels
      <button class="link" onClick=${() => { setEditing(null); setText(''); }}>Cancel</button></div>`}
    ${sugg && html`<ul class="suggestions" role="listbox" aria-label="Mention someone">
      ${sugg.items.map((m, i) => html`<li role="option" aria-selected=${i === sugg.index ? 'true' : 'false'}
          class=${i === sugg.index ? 'selected' : ''} onMouseDown=${(e) => { e.preventDefault(); complete(m); }}>
          <strong>${m.name || m.user_id}</strong> <span class="muted">@${m.user_id}</span></li>`)}
    </ul>`}
    <form class="composer" onSubmit=${(e) => { e.preventDefault(); submit(); }}>
      <button type="button" class="attach" aria-label="Attach files" title="Attach files"
              onClick=${() => fileInput.current.click()}>＋</button>
      <input type="file" multiple hidden ref=${fileInput}
             onChange=${(e) => { onFiles([...e.target.files], replyTo); e.target.value = ''; }} />
      <label class="sr-only" for=${id}>${placeholder}</label>
      <textarea id=${id} ref=${ref} rows="1" placeholder=${placeholder} value=${text}
                aria-label=${placeholder}
                onInput=${(e) => update(e.target.value, e.target.selectionStart)}
                onKeyDown=${onKeyDown} onPaste=${onPaste} onBlur=${stopTyping}></textarea>
      <button type="submit" class="send" aria-label=${editing ? 'Save' : 'Send'}>${editing ? 'Save' : 'Send'}</button>
    </form>
  </div>`;
}

// ---------------------------------------------------------------- panels

function ThreadPanel({ store, client, parent, close, openLightbox, onFiles, uploads }) {
  const [editing, setEditing] = useState(null);
  useEffect(() => { store.loadThread(parent).catch(alertError); }, [parent.id]);
  const t = store.threads.get(parent.id);
  const p = t?.parent || parent;
  return html`<aside class="panel thread-panel" aria-label="Thread">
    <header><h2>Thread</h2><button onClick=${close} aria-label="Close thread">✕</button></header>
    <ol class="message-list thread">
      <${Message} store=${store} client=${client} m=${p} onEdit=${setEditing} openLightbox=${openLightbox} />
      <li class="day"><span>${(t?.items.length || 0)} ${t?.items.length === 1 ? 'reply' : 'replies'}</span></li>
      ${(t?.items || []).map((m) => html`<${Message} key=${m.id} store=${store} client=${client} m=${m}
          onEdit=${setEditing} openLightbox=${openLightbox} />`)}
    </ol>
    <${Composer} store=${store} client=${client} convId=${parent.conversation_id} replyTo=${parent.id}
      editing=${editing} setEditing=${setEditing} onFiles=${onFiles} uploads=${uploads}
      placeholder="Reply in thread" autofocus=${true} />
  </aside>`;
}

const ROLES = ['owner', 'admin', 'moderator', 'member'];
const RANK = { owner: 3, admin: 2, moderator: 1, member: 0 };

function MembersPanel({ store, client, convId, close }) {
  const [add, setAdd] = useState('');
  const conv = store.conversations.get(convId);
  useEffect(() => {
    store.loadMembers(convId).then((list) => store.loadPresence(list.map((m) => m.user_id))).catch(alertError);
  }, [convId]);
  const list = store.members.get(convId) || [];
  const me = RANK[store.myRole(convId)] || 0;
  const direct = conv?.type === 'direct';
  const doAdd = async (e) => {
    e.preventDefault();
    const ids = add.split(/[\s,]+/).filter(Boolean);
    if (!ids.length) return;
    try { await client.addMembers(convId, ids); setAdd(''); await store.loadMembers(convId); } catch (err) { alertError(err); }
  };
  return html`<aside class="panel members-panel" aria-label="Members">
    <header><h2>Members (${list.length})</h2><button onClick=${close} aria-label="Close members">✕</button></header>
    <ul class="member-list">
      ${list.map((m) => {
        const p = store.presence.get(m.user_id);
        return html`<li key=${m.user_id} class="member" data-user=${m.user_id}>
          <${Avatar} id=${m.user_id} name=${m.name || m.user_id} presence=${p || { status: 'offline' }} small=${true} />
          <span class="member-name">${m.name || m.user_id}${m.user_id === store.me ? ' (you)' : ''}
            ${p && p.custom_status && html`<span class="muted custom-status">${p.status_emoji || ''} ${p.custom_status}</span>`}</span>
          ${!direct && (me >= 2 && m.user_id !== store.me && RANK[m.role] < me
            ? html`<select aria-label=${`Role of ${m.user_id}`} value=${m.role}
                onChange=${(e) => client.setRole(convId, m.user_id, e.target.value).then(() => store.loadMembers(convId)).catch(alertError)}>
                ${ROLES.filter((r) => RANK[r] < me || store.myRole(convId) === 'owner').map((r) => html`<option value=${r}>${r}</option>`)}
              </select>`
            : html`<span class="role">${m.role}</span>`)}
          ${!direct && me >= 1 && m.user_id !== store.me && RANK[m.role] < me && html`<button class="link danger"
              aria-label=${`Remove ${m.user_id}`}
              onClick=${() => client.removeMember(convId, m.user_id).then(() => store.loadMembers(convId)).catch(alertError)}>Remove</button>`}
        </li>`;
      })}
    </ul>
    ${!direct && me >= 2 && html`<form class="add-member" onSubmit=${doAdd}>
      <label for="add-member-input">Add members (user ids)</label>
      <div class="row"><input id="add-member-input" value=${add} onInput=${(e) => setAdd(e.target.value)} placeholder="bob, carol" />
      <button type="submit">Add</button></div>
    </form>`}
    ${!direct && html`<button class="leave danger" onClick=${() => client.removeMember(convId, store.me).then(() => {
      store.conversations.delete(convId); store.current = null; close(); store.changed();
    }).catch(alertError)}>Leave conversation</button>`}
  </aside>`;
}

function SearchPanel({ store, client, close, jump }) {
  const [q, setQ] = useState('');
  const [here, setHere] = useState(false);
  const [sender, setSender] = useState('');
  const [type, setType] = useState('');
  const [results, setResults] = useState(null);
  const ref = useRef();
  useEffect(() => { ref.current && ref.current.focus(); }, []);
  const run = async (e) => {
    e && e.preventDefault();
    if (!q.trim()) return;
    try {
      const r = await client.search({ q, conversation_id: here && store.current ? store.current : undefined, sender_id: sender || undefined, type: type || undefined, limit: 50 });
      setResults(r.items);
    } catch (err) { alertError(err); }
  };
  return html`<aside class="panel search-panel" aria-label="Search">
    <header><h2>Search</h2><button onClick=${close} aria-label="Close search">✕</button></header>
    <form class="search-form" onSubmit=${run}>
      <label class="sr-only" for="search-q">Search messages</label>
      <input id="search-q" ref=${ref} type="search" placeholder="Search messages" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <div class="row filters">
        <label><input type="checkbox" checked=${here} disabled=${!store.current} onChange=${(e) => setHere(e.target.checked)} /> This conversation</label>
        <label class="sr-only" for="search-sender">From user</label>
        <input id="search-sender" placeholder="from user id" value=${sender} onInput=${(e) => setSender(e.target.value)} />
        <label class="sr-only" for="search-type">Type</label>
        <select id="search-type" value=${type} onChange=${(e) => setType(e.target.value)}>
          <option value="">any type</option><option value="text">text</option><option value="image">image</option><option value="file">file</option>
        </select>
      </div>
      <button type="submit">Search</button>
    </form>
    ${results && (results.length ? html`<ul class="results">
      ${results.map((m) => html`<li key=${m.id}><button class="result" onClick=${() => jump(m)}>
        <span class="muted">${store.title(store.conversations.get(m.conversation_id))} · ${store.name(m.sender_id)} · ${shortTime(m.created_at)}</span>
        <span class="result-text">${m.content}</span>
      </button></li>`)}
    </ul>` : html`<p class="empty">Nothing found.</p>`)}
  </aside>`;
}

function NewConversation({ store, client, close, opened }) {
  const [type, setType] = useState('group');
  const [title, setTitle] = useState('');
  const [people, setPeople] = useState([]);
  const [input, setInput] = useState('');
  const [error, setError] = useState('');
  const ref = useRef();
  useEffect(() => { ref.current && ref.current.focus(); }, []);
  const known = [...store.names.keys()].filter((u) => u !== store.me && !people.includes(u));
  const addPerson = (v) => {
    const ids = v.split(/[\s,]+/).map((s) => s.trim().replace(/^@/, '')).filter(Boolean);
    if (!ids.length) return;
    setPeople((p) => {
      const next = [...p];
      for (const id of ids) if (!next.includes(id) && id !== store.me) next.push(id);
      return type === 'direct' ? next.slice(-1) : next;
    });
    setInput('');
  };
  const create = async (e) => {
    e.preventDefault();
    const ids = [...people];
    if (input.trim()) ids.push(...input.split(/[\s,]+/).filter(Boolean));
    const body = { type, member_ids: [...new Set(ids)] };
    if (type !== 'direct') body.title = title.trim() || null;
    if (type === 'direct' && body.member_ids.length !== 1) { setError('A direct conversation names one other user.'); return; }
    try {
      const c = await client.createConversation(body);
      store.putConversation(c);
      await store.loadMembers(c.id);
      store.changed();
      opened(c.id);
    } catch (err) { setError(err.message); }
  };
  return html`<aside class="panel new-panel" aria-label="New conversation">
    <header><h2>New conversation</h2><button onClick=${close} aria-label="Close">✕</button></header>
    <form class="new-form" onSubmit=${create}>
      <fieldset class="types"><legend>Type</legend>
        ${['direct', 'group', 'channel'].map((t) => html`<label><input type="radio" name="conv-type" value=${t}
            checked=${type === t} onChange=${() => { setType(t); if (t === 'direct') setPeople((p) => p.slice(-1)); }} /> ${t}</label>`)}
      </fieldset>
      ${type !== 'direct' && html`<label for="new-title">Title</label>
        <input id="new-title" ref=${ref} maxlength="200" value=${title} onInput=${(e) => setTitle(e.target.value)} placeholder="e.g. launch" />`}
      <label for="new-people">${type === 'direct' ? 'User id' : 'Members (user ids)'}</label>
      <div class="picker-box">
        ${people.map((p) => html`<span class="chip" key=${p}>${store.name(p)}
          <button type="button" aria-label=${`Remove ${p}`} onClick=${() => setPeople(people.filter((x) => x !== p))}>✕</button></span>`)}
        <input id="new-people" list="known-users" value=${input} placeholder="type a user id, Enter"
               onInput=${(e) => { const v = e.target.value; if (/[,\s]$/.test(v)) addPerson(v); else setInput(v); }}
               onKeyDown=${(e) => { if (e.key === 'Enter' && input.trim()) { e.preventDefault(); addPerson(input); } }} />
        <datalist id="known-users">${known.map((u) => html`<option value=${u}>${store.name(u)}</option>`)}</datalist>
      </div>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit" class="primary">Create</button>
    </form>
  </aside>`;
}

// ---------------------------------------------------------------- app

let alertSink = null;
function alertError(e) {
  console.warn(e);
  if (alertSink) alertSink(e && e.message ? e.message : String(e));
}

function App({ store, client, notifications }) {
  useStore(store);
  const [panel, setPanel] = useState(null);        // {kind, ...}
  const [editing, setEditing] = useState(null);
  const [lightbox, setLightbox] = useState(null);
  const [uploads, setUploads] = useState([]);
  const [dragging, setDragging] = useState(false);
  const [showArchived, setShowArchived] = useState(false);
  const [toast, setToast] = useState('');
  const [highlight, setHighlight] = useState(null);
  const [notifyState, setNotifyState] = useState(typeof Notification !== 'undefined' ? Notification.permission : 'unsupported');
  const convId = store.current;
  const conv = convId ? store.conversations.get(convId) : null;

  useEffect(() => { alertSink = (t) => { setToast(t); setTimeout(() => setToast(''), 4000); }; }, []);

  // the title shows the unread total
  const total = store.unreadTotal();
  useEffect(() => { document.title = (total ? `(${total}) ` : '') + 'ngx_chat'; }, [total]);

  // read what is on screen
  useEffect(() => {
    if (!conv || document.hidden) return;
    const box = store.box(convId);
    if (!box.loaded) return;
    const last = box.items.length ? box.items[box.items.length - 1].seq : 0;
    if ((conv.me.unread_count || 0) > 0 || (conv.me.last_read_seq || 0) < last) {
      conv.me = { ...conv.me, unread_count: 0, unread_mentions: 0, last_read_seq: Math.max(last, conv.me.last_read_seq || 0) };
      client.markRead(convId).catch(() => {});
      store.changed();
    }
  });
  useEffect(() => {
    const f = () => store.changed();
    document.addEventListener('visibilitychange', f);
    return () => document.removeEventListener('visibilitychange', f);
  }, []);

  // the conversation looked at: its history, members; join for presence
  useEffect(() => {
    if (!convId) return;
    store.loadLatest(convId).catch(alertError);
    if (!store.members.has(convId)) store.loadMembers(convId).catch(() => {});
    client.join(convId).catch(() => {});
    const off = client.on('state', ({ state }) => { if (state === 'open') client.join(convId).catch(() => {}); });
    return off;
  }, [convId]);

  // Esc closes panels
  useEffect(() => {
    const f = (e) => {
      if (e.key !== 'Escape') return;
      if (lightbox) setLightbox(null);
      else if (panel) setPanel(null);
    };
    document.addEventListener('keydown', f);
    return () => document.removeEventListener('keydown', f);
  }, [lightbox, panel]);

  const open = (id) => {
    store.current = id;
    setEditing(null);
    setHighlight(null);
    if (panel && panel.kind !== 'search') setPanel(null);
    store.changed();
  };

  const onFiles = useCallback((files, replyTo) => {
    const id = store.current;
    if (!id) return;
    for (const file of files) {
      const key = Math.random().toString(36).slice(2);
      const u = { key, name: file.name || 'pasted file', progress: 0, error: null };
      setUploads((l) => [...l, u]);
      const set = (patch) => setUploads((l) => l.map((x) => (x.key === key ? { ...x, ...patch } : x)));
      client.upload(file, { onProgress: (p) => set({ progress: p }) })
        .then((f) => {
          const type = ['image', 'video', 'audio'].includes(f.kind) ? f.kind : 'file';
          return client.send(id, '', { type, attachments: [f.id], replyTo });
        })
        .then(() => setUploads((l) => l.filter((x) => x.key !== key)))
        .catch((e) => {
          set({ error: e.message });
          setTimeout(() => setUploads((l) => l.filter((x) => x.key !== key)), 6000);
        });
    }
  }, []);

  const onDrop = (e) => {
    e.preventDefault();
    setDragging(false);
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) onFiles(files, panel?.kind === 'thread' ? panel.parent.id : null);
  };

  const askNotify = async () => {
    try { setNotifyState(await Notification.requestPermission()); } catch { /* old API */ }
  };

  const onThread = (m) => setPanel({ kind: 'thread', parent: m });
  const jump = (m) => {
    open(m.conversation_id);
    setHighlight(m.id);
  };

  const conn = store.connection;
  const peer = conv && store.directPeer.get(convId);
  const peerPres = peer && store.presence.get(peer);
  return html`<div class=${'app' + (conv ? ' has-current' : '') + (panel ? ' has-panel' : '')}>
    ${conn === 'reconnecting' && html`<div class="banner reconnecting" role="status">Reconnecting…</div>`}
    ${conn === 'connecting' && html`<div class="banner connecting" role="status">Connecting…</div>`}
    <nav class="sidebar" aria-label="Chats">
      <${MyStatus} store=${store} client=${client} />
      <div class="sidebar-actions">
        <button class="primary new-conv" onClick=${() => setPanel({ kind: 'new' })}>New</button>
        <button class="search-btn" onClick=${() => setPanel({ kind: 'search' })} aria-label="Search messages">Search</button>
        ${notifyState === 'default' && html`<button class="notify-btn" onClick=${askNotify} title="Notify me of mentions and direct messages">🔔</button>`}
      </div>
      <${ConversationList} store=${store} open=${open} showArchived=${showArchived} />
      <button class="link archived-toggle" onClick=${() => setShowArchived(!showArchived)}>
        ${showArchived ? '← Back to conversations' : 'Archived conversations'}</button>
    </nav>
    <main class=${'main' + (dragging ? ' dragging' : '')}
          onDragOver=${(e) => { if (conv) { e.preventDefault(); setDragging(true); } }}
          onDragLeave=${(e) => { if (e.currentTarget === e.target) setDragging(false); }}
          onDrop=${onDrop}>
      ${conv ? html`
        <header class="conv-header">
          <button class="back" aria-label="Back to conversations" onClick=${() => { store.current = null; setPanel(null); store.changed(); }}>←</button>
          <div class="conv-header-title">
            <h1>${conv.type === 'channel' ? '# ' : ''}${store.title(conv)}</h1>
            <span class="muted">${conv.type === 'direct'
              ? html`<${PresenceDot} presence=${peerPres} /> ${peerPres ? peerPres.status : 'offline'}${peerPres?.custom_status ? ' · ' + peerPres.custom_status : ''}`
              : `${conv.member_count || ''} members`}</span>
          </div>
          <div class="conv-header-actions">
            <button class="members-btn" onClick=${() => setPanel({ kind: 'members' })} aria-label="Members">👥</button>
            <button class="pin-conv" aria-pressed=${conv.me.pinned ? 'true' : 'false'} aria-label=${conv.me.pinned ? 'Unpin conversation' : 'Pin conversation'}
                    onClick=${() => client.updateMine(convId, { pinned: !conv.me.pinned }).then((c) => { store.putConversation(c); store.changed(); }).catch(alertError)}>📌</button>
            <button class="archive-conv" aria-label=${conv.me.archived ? 'Unarchive' : 'Archive'}
                    onClick=${() => client.updateMine(convId, { archived: !conv.me.archived }).then((c) => { store.putConversation(c); store.changed(); }).catch(alertError)}>🗄</button>
          </div>
        </header>
        <${MessageList} store=${store} client=${client} convId=${convId} onThread=${onThread}
            onEdit=${setEditing} openLightbox=${setLightbox} highlight=${highlight} />
        <${TypingLine} store=${store} convId=${convId} />
        <${Composer} store=${store} client=${client} convId=${convId} editing=${editing} setEditing=${setEditing}
            onFiles=${onFiles} uploads=${panel?.kind === 'thread' ? [] : uploads} placeholder=${`Message ${store.title(conv)}`} autofocus=${true} />
        ${dragging && html`<div class="drop-hint" aria-hidden="true">Drop files to upload</div>`}
      ` : html`<div class="welcome"><h1>ngx_chat</h1><p>Pick a conversation, or start a new one.</p></div>`}
    </main>
    ${panel?.kind === 'thread' && conv && html`<${ThreadPanel} key=${panel.parent.id} store=${store} client=${client} parent=${panel.parent}
        close=${() => setPanel(null)} openLightbox=${setLightbox} onFiles=${onFiles} uploads=${uploads} />`}
    ${panel?.kind === 'members' && conv && html`<${MembersPanel} store=${store} client=${client} convId=${convId} close=${() => setPanel(null)} />`}
    ${panel?.kind === 'search' && html`<${SearchPanel} store=${store} client=${client} close=${() => setPanel(null)} jump=${jump} />`}
    ${panel?.kind === 'new' && html`<${NewConversation} store=${store} client=${client} close=${() => setPanel(null)}
        opened=${(id) => { setPanel(null); open(id); }} />`}
    ${lightbox && html`<${Lightbox} client=${client} file=${lightbox} close=${() => setLightbox(null)} />`}
    ${toast && html`<div class="toast" role="alert">${toast}</div>`}
  </div>`;
}

function SignIn({ onToken }) {
  const [v, setV] = useState('');
  return html`<div class="signin">
    <h1>ngx_chat</h1>
    <p>Open a sign-in link (<code>scripts/dev up</code> prints some), or paste a token.</p>
    <form onSubmit=${(e) => { e.preventDefault(); if (v.trim()) onToken(v.trim()); }}>
      <label for="token-input">Token</label>
      <textarea id="token-input" rows="4" value=${v} onInput=${(e) => setV(e.target.value)}></textarea>
      <button type="submit" class="primary">Sign in</button>
    </form>
  </div>`;
}

/**
 * Renders the chat into `el`.
 * options: token, getToken (async () => token; asked before each
 * connection and when the token nears its exp), baseUrl, apiPath, wsPath,
 * onSignOut.  Resolves to {client, store, destroy}.
 */
export async function mount(el, options = {}) {
  let token = options.token || (options.getToken ? await options.getToken() : null);
  if (!token) {
    return new Promise((resolve) => {
      render(html`<${SignIn} onToken=${(t) => { render(null, el); resolve(mount(el, { ...options, token: t })); }} />`, el);
    });
  }
  const claims = jwtClaims(token);
  const client = new ChatClient({
    token, getToken: options.getToken, baseUrl: options.baseUrl,
    apiPath: options.apiPath, wsPath: options.wsPath,
  });
  const store = new Store(client, claims.sub);
  if (claims.name) store.names.set(claims.sub, claims.name);
  store.notify = (title, body, convId) => {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted' || !document.hidden) return;
    const n = new Notification(title, { body: String(body).slice(0, 200), tag: `chat-${convId}` });
    n.onclick = () => { window.focus(); store.current = convId; store.changed(); n.close(); };
  };
  client.on('hello', (h) => { store.me = h.user_id; });
  // a token nearing its end is refreshed where the site can
  let refresh = null;
  const plan = (t) => {
    clearTimeout(refresh);
    const exp = jwtClaims(t).exp;
    if (!exp || !options.getToken) return;
    const ms = Math.max(5000, exp * 1000 - Date.now() - 60000);
    refresh = setTimeout(async () => {
      try { const next = await options.getToken(); client.setToken(next); plan(next); } catch (e) { console.warn(e); }
    }, ms);
  };
  plan(token);
  render(html`<${App} store=${store} client=${client} />`, el);
  try {
    await store.loadConversations();
  } catch (e) {
    if (e.status === 401 && options.onSignOut) options.onSignOut();
    alertError(e);
  }
  client.connect();
  store.loadPresence([store.me]);
  window.__chat = { client, store };   // for debugging and tests
  return {
    client, store,
    destroy() { clearTimeout(refresh); client.close(); render(null, el); },
  };
}
