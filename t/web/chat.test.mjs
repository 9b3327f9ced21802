// The web client end to end: real nginx with the module, Postgres, Redis,
// and Debian's Chromium driven by playwright-core.  Run: node --test t/web/

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launch, openAs, shot, rendered, serverMessages, countOpens, workerPids, keepLogs } from './helpers.mjs';

let stack, browser, alice, bob;
let convId;

// a 40x30 PNG (red), made by hand: zlib of filtered rows
function png() {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const w = 40, h = 30;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const rows = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      rows[o] = 220; rows[o + 1] = 40 + y * 4; rows[o + 2] = 40 + x * 4;
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlibSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}
import { deflateSync as zlibSync } from 'node:zlib';

const T = { timeout: 15000 };
const msgs = (page) => page.locator('.messages .message-list > li.msg');
const msgWith = (page, text) => page.locator('.messages .message-list > li.msg', { hasText: text });

async function send(page, text, where = '.main .composer textarea') {
  const box = page.locator(where);
  await box.fill(text);
  await box.press('Enter');
}

/** Both pages show exactly the server's messages of the conversation, each once. */
async function sameAsServer(page) {
  await page.waitForFunction(async (id) => {
    const r = await window.__chat.client.messages(id, { limit: 100 });
    const want = r.items.map((m) => m.id).reverse().join(',');
    const got = [...document.querySelectorAll('.messages .message-list > li.msg')].map((e) => e.dataset.id).join(',');
    return want === got;
  }, convId, { timeout: 20000, polling: 200 });
  const got = await rendered(page);
  const server = await serverMessages(page, convId);
  assert.deepEqual(got.map((m) => m.id), server.map((m) => m.id));
  assert.equal(new Set(got.map((m) => m.id)).size, got.length, 'a message shown twice');
  return got;
}

before(async () => {
  stack = await startStack();
  browser = await launch();
  alice = await openAs(browser, stack, 'alice');
  bob = await openAs(browser, stack, 'bob');
});

after(async () => {
  if (stack) keepLogs(stack, [alice, bob].filter(Boolean));
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

test('the page signs in from the fragment and forgets it in the address bar', async () => {
  assert.equal(await alice.textContent('.me-name'), 'Alice');
  assert.equal(await bob.textContent('.me-name'), 'Bob');
  assert.ok(!alice.url().includes('token='), alice.url());
  const kept = await alice.evaluate(() => sessionStorage.getItem('ngx_chat.token'));
  assert.equal(kept, stack.tokens.alice);
  await shot(alice, '01-empty');
});

test('alice creates a group with bob; bob sees it appear', async () => {
  await alice.click('button.new-conv');
  await alice.fill('#new-title', 'launch');
  await alice.fill('#new-people', 'bob');
  await alice.press('#new-people', 'Enter');
  await alice.locator('.chip', { hasText: 'bob' }).waitFor(T);
  await shot(alice, '02-new-conversation');
  await alice.click('.new-form button[type=submit]');
  await alice.locator('.conv-header h1', { hasText: 'launch' }).waitFor(T);
  convId = Number(await alice.getAttribute('.conv-item.active', 'data-id'));
  assert.ok(convId > 0);
  await bob.locator(`.conv-item[data-id="${convId}"]`, { hasText: 'launch' }).waitFor(T);
});

test('messages, the unread badge, a mention with completion, typing', async () => {
  await send(alice, 'hello bob');
  await msgWith(alice, 'hello bob').waitFor(T);
  const item = bob.locator(`.conv-item[data-id="${convId}"]`);
  await item.locator('.badge.unread', { hasText: '1' }).waitFor(T);
  assert.equal(await item.locator('.badge.mention').count(), 0);

  // @-completion: "@b" offers bob, Tab takes it
  const box = alice.locator('.main .composer textarea');
  await box.click();
  await box.pressSequentially('look @b');
  await alice.locator('.suggestions li', { hasText: 'bob' }).waitFor(T);
  await box.press('Tab');
  assert.equal(await box.inputValue(), 'look @bob ');
  await box.pressSequentially('here');
  assert.equal(await box.inputValue(), 'look @bob here');
  await box.press('Enter');
  await msgWith(alice, 'look @bob here').waitFor(T);
  await item.locator('.badge.unread', { hasText: '2' }).waitFor(T);
  await item.locator('.badge.mention').waitFor(T);
  await bob.waitForFunction(() => document.title.startsWith('(2)'), null, T);
  await shot(bob, '03-unread-and-mention');

  await item.click();
  await msgWith(bob, 'look @bob here').locator('.mention.me').waitFor(T);
  await msgWith(bob, 'hello bob').waitFor(T);
  await bob.waitForFunction((id) => !document.querySelector(`.conv-item[data-id="${id}"] .badge`), convId, T);
  await bob.waitForFunction(() => !document.title.startsWith('('), null, T);

  // typing: alice types, bob sees it, then it ends with the message
  await box.pressSequentially('typing now');
  await bob.locator('.typing', { hasText: 'Alice is typing' }).waitFor(T);
  await box.press('Enter');
  await msgWith(bob, 'typing now').waitFor(T);
  await bob.waitForFunction(() => !document.querySelector('.typing').textContent, null, T);

  await send(bob, 'hi alice');
  await msgWith(alice, 'hi alice').waitFor(T);
  // alice's last message is seen by bob
  await alice.locator('.read-status', { hasText: 'Seen by Bob' }).waitFor(T);
  await sameAsServer(alice);
  await sameAsServer(bob);
  await shot(alice, '04-conversation');
});

test('a reaction, an edit, a delete and a thread reply show on both sides', async () => {
  // reaction by alice on bob's message
  const m = msgWith(alice, 'hi alice');
  await m.hover();
  await m.locator('.act-react').click();
  await m.locator('.picker button[data-emoji="👍"]').click();
  for (const p of [alice, bob]) {
    await msgWith(p, 'hi alice').locator('.reaction[data-emoji="👍"] .count', { hasText: '1' }).waitFor(T);
  }
  assert.equal(await msgWith(alice, 'hi alice').locator('.reaction.mine').count(), 1);
  assert.equal(await msgWith(bob, 'hi alice').locator('.reaction.mine').count(), 0);

  // edit: Up in the empty composer edits alice's last message
  await send(alice, 'to be edited');
  await msgWith(bob, 'to be edited').waitFor(T);
  await msgWith(alice, 'to be edited').waitFor(T);
  const box = alice.locator('.main .composer textarea');
  await box.press('ArrowUp');
  await alice.locator('.editing-bar').waitFor(T);
  assert.equal(await box.inputValue(), 'to be edited');
  await box.fill('edited for real');
  await box.press('Enter');
  for (const p of [alice, bob]) {
    await msgWith(p, 'edited for real').locator('.edited').waitFor(T);
  }
  assert.equal(await msgWith(bob, 'to be edited').count(), 0);

  // delete with its confirmation
  await send(alice, 'to be deleted');
  await msgWith(bob, 'to be deleted').waitFor(T);
  const d = msgWith(alice, 'to be deleted');
  await d.hover();
  await d.locator('.act-delete').click();
  await d.locator('.act-delete-confirm').click();
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => ![...document.querySelectorAll('.msg .content')].some((e) => e.textContent.includes('to be deleted')), null, T);
    await p.locator('.msg.deleted .tombstone').waitFor(T);
  }

  // a thread reply by bob to alice's first message
  const first = msgWith(bob, 'hello bob');
  await first.hover();
  await first.locator('.act-reply').click();
  await bob.locator('.thread-panel').waitFor(T);
  await send(bob, 'a reply in the thread', '.thread-panel .composer textarea');
  await bob.locator('.thread-panel .msg', { hasText: 'a reply in the thread' }).waitFor(T);
  await msgWith(alice, 'a reply in the thread').locator('.reply-quote', { hasText: 'hello bob' }).waitFor(T);
  for (const p of [alice, bob]) {
    await msgWith(p, 'hello bob').locator('.thread-link', { hasText: '1 reply' }).waitFor(T);
    assert.equal(await msgWith(p, 'hello bob').locator('.thread-link').textContent(), '1 reply');
  }
  await shot(bob, '05-thread');
  // alice opens the thread from the link
  await msgWith(alice, 'hello bob').locator('.thread-link').click();
  await alice.locator('.thread-panel .msg', { hasText: 'a reply in the thread' }).waitFor(T);
  await alice.keyboard.press('Escape');
  await alice.locator('.thread-panel').waitFor({ state: 'detached', ...T });
  await bob.keyboard.press('Escape');
  await bob.locator('.thread-panel').waitFor({ state: 'detached', ...T });
  await sameAsServer(alice);
  await sameAsServer(bob);
});

test('an image dropped on alice\'s page shows as a preview on bob\'s', async () => {
  const bytes = [...png()];
  await alice.evaluate((bytes) => {
    const file = new File([new Uint8Array(bytes)], 'red.png', { type: 'image/png' });
    const dt = new DataTransfer();
    dt.items.add(file);
    const target = document.querySelector('.main');
    target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, bytes);
  for (const p of [bob, alice]) {
    await p.waitForFunction(() => [...document.querySelectorAll('.messages .attachment img.preview')]
      .some((i) => i.complete && i.naturalWidth > 0), null, T);
  }
  assert.equal(await alice.locator('.uploads').count(), 0, 'the upload bar went away');
  await shot(bob, '06-image');
  // the lightbox shows the full image, Esc closes it
  await bob.locator('.messages .image-button').last().click();
  await bob.waitForFunction(() => { const i = document.querySelector('.lightbox img.full'); return i && i.naturalWidth === 40; }, null, T);
  await shot(bob, '07-lightbox');
  await bob.keyboard.press('Escape');
  await bob.locator('.lightbox').waitFor({ state: 'detached', ...T });
});

async function survives(what, cut) {
  await countOpens(alice);
  await countOpens(bob);
  const opens = await Promise.all([alice, bob].map((p) => p.evaluate(() => window.__opens)));
  const before = (await rendered(bob)).length;
  await cut();
  // messages sent right away, while connections may be cut: queued and retried
  for (let i = 0; i < 3; i++) await send(alice, `${what} a${i}`);
  await send(bob, `${what} b0`);
  for (const p of [alice, bob]) {
    for (const t of [`${what} a0`, `${what} a1`, `${what} a2`, `${what} b0`]) await msgWith(p, t).first().waitFor({ timeout: 30000 });
  }
  const a = await sameAsServer(alice);
  const b = await sameAsServer(bob);
  assert.equal(b.length, before + 4);
  assert.deepEqual(a.map((m) => m.id), b.map((m) => m.id));
  // alice's three in the order she sent them, retried or not
  const at = (t) => a.findIndex((m) => m.text === t);
  assert.ok(at(`${what} a0`) < at(`${what} a1`) && at(`${what} a1`) < at(`${what} a2`),
            a.slice(-5).map((m) => m.text).join(' | '));
  for (const p of [alice, bob]) {
    for (const t of [`${what} a0`, `${what} a1`, `${what} a2`, `${what} b0`]) assert.equal(await msgWith(p, t).count(), 1, t);
  }
  return opens;
}

test('nginx -s reload: both go on, nothing lost or doubled', async () => {
  const opens = await survives('reload', async () => {
    const old = workerPids(stack.nginx_pid);
    process.kill(stack.nginx_pid, 'SIGHUP');
    // the old workers leave: wait until they are gone
    const deadline = Date.now() + 20000;
    while (workerPids(stack.nginx_pid).some((p) => old.includes(p)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  // both reconnected (the old workers closed their connections)
  for (const [i, p] of [alice, bob].entries()) {
    await p.waitForFunction((n) => window.__opens > n, opens[i], { timeout: 20000 });
  }
});

test('a killed worker: both go on, nothing lost or doubled', async () => {
  // kill every worker in turn, so that both pages lose a connection
  for (const pid of workerPids(stack.nginx_pid)) {
    const opens = await Promise.all([alice, bob].map((p) => p.evaluate(() => window.__opens)));
    await survives(`kill${pid}`, async () => {
      process.kill(pid, 'SIGKILL');
      const deadline = Date.now() + 20000;
      while (workerPids(stack.nginx_pid).includes(pid) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    for (const p of [alice, bob]) {
      await p.waitForFunction(() => window.__chat.client.state === 'open', null, T);
    }
    void opens;
  }
  const total = await Promise.all([alice, bob].map((p) => p.evaluate(() => window.__opens)));
  assert.ok(total[0] + total[1] >= 4, `reconnects: ${total}`);
});

test('"Reconnecting…" shows while cut off; a new token reconnects and resumes', async () => {
  await countOpens(bob);
  const n = await bob.evaluate(() => window.__opens);
  // cut bob's connection, with a backoff long enough to be seen
  await bob.evaluate(() => {
    const c = window.__chat.client;
    c.backoff.base = 1500;
    c.ws.close(4001, 'test');
  });
  await bob.locator('.banner.reconnecting', { hasText: 'Reconnecting' }).waitFor(T);
  await send(alice, 'while bob was away');
  await msgWith(bob, 'while bob was away').waitFor(T);
  await bob.locator('.banner').waitFor({ state: 'detached', ...T });
  await bob.waitForFunction((k) => window.__opens > k, n, T);
  // a new token: the connection is made again with it
  const m = await bob.evaluate(() => window.__opens);
  await bob.evaluate((t) => { window.__chat.client.backoff.base = 300; window.__chat.client.setToken(t); }, stack.tokens.bob);
  await bob.waitForFunction((k) => window.__opens > k && window.__chat.client.state === 'open', m, T);
  await send(bob, 'after the new token');
  await msgWith(alice, 'after the new token').waitFor(T);
  await sameAsServer(bob);
});

test('history loads as bob scrolls up, by seq, each message once', async () => {
  const id = await alice.evaluate(async () => {
    const c = window.__chat.client;
    const conv = await c.createConversation({ type: 'group', title: 'long history', member_ids: ['bob'] });
    for (let i = 0; i < 130; i++) {
      await c.api('POST', `conversations/${conv.id}/messages`, { content: `old ${i}`, client_id: `h${i}` });
    }
    return conv.id;
  });
  await bob.click(`.conv-item[data-id="${id}"]`);
  await msgWith(bob, 'old 129').waitFor(T);
  const first = (await rendered(bob)).length;
  assert.ok(first >= 50 && first < 130, `first page: ${first}`);
  // scroll up until the start
  for (let i = 0; i < 20 && !(await bob.locator('.history-start').count()); i++) {
    const k = (await rendered(bob)).length;
    await bob.evaluate(() => { document.querySelector('.messages').scrollTop = 0; });
    await bob.waitForFunction((k) => document.querySelectorAll('.messages li.msg').length > k ||
      document.querySelector('.history-start'), k, T);
  }
  const all = await rendered(bob);
  assert.equal(all.length, 130);
  assert.deepEqual(all.map((m) => m.text), Array.from({ length: 130 }, (_, i) => `old ${i}`));
  for (let i = 1; i < all.length; i++) assert.ok(all[i].seq > all[i - 1].seq);
  assert.equal(await bob.locator('.messages .day').count(), 1);
  // the view stayed where the reader was: not thrown to the bottom
  assert.ok(await bob.evaluate(() => { const e = document.querySelector('.messages'); return e.scrollHeight - e.scrollTop - e.clientHeight > 200; }));
  await shot(bob, '13-history');
  await bob.click(`.conv-item[data-id="${convId}"]`);
  await msgWith(bob, 'hello bob').first().waitFor(T);
});

test('user text is text: markup shows as written and runs nothing; links are safe', async () => {
  const evil = '<img src=x onerror=alert(1)><script>alert(2)</script>';
  await send(alice, evil);
  for (const p of [alice, bob]) {
    const m = msgWith(p, '<img src=x onerror=alert(1)>');
    await m.waitFor(T);
    assert.equal(await m.locator('.content').textContent(), evil);
    assert.equal(await m.locator('img, script').count(), 0);
  }
  await send(alice, 'see https://example.com/a?b=1 and javascript:alert(3) now');
  const link = msgWith(bob, 'see https://example.com').locator('a');
  await link.first().waitFor(T);
  assert.equal(await link.count(), 1);
  assert.equal(await link.getAttribute('href'), 'https://example.com/a?b=1');
  assert.match(await link.getAttribute('rel'), /noopener/);
  // give any handler a moment to fire
  await bob.waitForTimeout(300);
  assert.deepEqual(alice.dialogs, []);
  assert.deepEqual(bob.dialogs, []);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('a phone-width window is usable', async () => {
  const phone = await openAs(browser, stack, 'bob', { viewport: { width: 375, height: 700 }, isMobile: true, hasTouch: true });
  await phone.locator(`.conv-item[data-id="${convId}"]`).waitFor(T);
  await shot(phone, '08-phone-list');
  const wide = () => phone.evaluate(() => [...document.querySelectorAll('.sidebar *, .main *')]
    .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > 376)
    .map((e) => e.className || e.tagName).slice(0, 5));
  assert.deepEqual(await wide(), [], 'nothing sticks out of a phone-width window');
  await phone.locator('.search-btn').waitFor(T);
  await phone.click(`.conv-item[data-id="${convId}"]`);
  const box = phone.locator('.main .composer textarea');
  await box.waitFor(T);
  const r = await box.boundingBox();
  assert.ok(r && r.y >= 0 && r.y + r.height <= 700 && r.x >= 0 && r.x + r.width <= 375, JSON.stringify(r));
  const sendBtn = await phone.locator('.main .composer .send').boundingBox();
  assert.ok(sendBtn.x + sendBtn.width <= 375, JSON.stringify(sendBtn));
  // no sideways scrolling
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 375));
  assert.deepEqual(await wide(), [], 'nothing sticks out of a phone-width window');
  await box.fill('from the phone');
  await phone.locator('.main .composer .send').tap();
  await msgWith(alice, 'from the phone').waitFor(T);
  await msgWith(phone, 'from the phone').waitFor(T);
  await shot(phone, '09-phone-conversation');
  await phone.click('.back');
  await phone.locator(`.conv-item[data-id="${convId}"]`).waitFor(T);
  await phone.context().close();
});

test('members, presence and search', async () => {
  await alice.click('.members-btn');
  await alice.locator('.members-panel .member[data-user="bob"]').waitFor(T);
  await alice.locator('.members-panel .member[data-user="bob"] .dot.online').waitFor(T);
  await shot(alice, '10-members');
  await alice.keyboard.press('Escape');
  // bob goes busy with a status; alice's member list shows it
  await bob.selectOption('#my-status-select', 'busy');
  await bob.fill('#my-status-text', 'in a meeting');
  await bob.press('#my-status-text', 'Enter');
  await alice.click('.members-btn');
  await alice.locator('.members-panel .member[data-user="bob"] .dot.busy').waitFor(T);
  await alice.locator('.members-panel .member[data-user="bob"]', { hasText: 'in a meeting' }).waitFor(T);
  await alice.keyboard.press('Escape');

  await alice.click('.search-btn');
  await alice.fill('#search-q', 'edited');
  await alice.press('#search-q', 'Enter');
  await alice.locator('.search-panel .result', { hasText: 'edited for real' }).waitFor(T);
  await shot(alice, '11-search');
  await alice.keyboard.press('Escape');
});

test('a direct conversation with a presence dot; pinned first, archived hidden', async () => {
  await alice.click('button.new-conv');
  await alice.check('input[name="conv-type"][value="direct"]');
  await alice.fill('#new-people', 'bob');
  await alice.press('#new-people', 'Enter');
  await alice.click('.new-form button[type=submit]');
  await alice.locator('.conv-header h1', { hasText: 'Bob' }).waitFor(T);
  const dm = Number(await alice.getAttribute('.conv-item.active', 'data-id'));
  assert.notEqual(dm, convId);
  // bob chose busy above: alice's list shows it on the direct conversation
  await alice.locator(`.conv-item[data-id="${dm}"] .dot.busy`).waitFor(T);
  await bob.locator(`.conv-item[data-id="${dm}"]`, { hasText: 'Alice' }).waitFor(T);
  await send(alice, 'a direct hello');
  await bob.locator(`.conv-item[data-id="${dm}"] .badge.unread`, { hasText: '1' }).waitFor(T);

  // pin the group: it goes first; archive it: it leaves the list
  await alice.click(`.conv-item[data-id="${convId}"]`);
  await alice.click('.pin-conv');
  await alice.waitForFunction((id) => document.querySelector('.conv-item').dataset.id === String(id), convId, T);
  await alice.locator(`.conv-item[data-id="${convId}"] .pin`).waitFor(T);
  await alice.click('.pin-conv');
  await alice.locator(`.conv-item[data-id="${convId}"] .pin`).waitFor({ state: 'detached', ...T });
  await alice.click('.archive-conv');
  await alice.locator(`.conv-item[data-id="${convId}"]`).waitFor({ state: 'detached', ...T });
  await alice.click('.archived-toggle');
  await alice.locator(`.conv-item[data-id="${convId}"]`).waitFor(T);
  await alice.click(`.conv-item[data-id="${convId}"]`);
  await alice.click('.archive-conv');
  await alice.click('.archived-toggle');
  await alice.locator(`.conv-item[data-id="${convId}"]`).waitFor(T);
  await alice.locator(`.conv-item[data-id="${dm}"]`).waitFor(T);
});

test('dark mode follows the system', async () => {
  const dark = await openAs(browser, stack, 'alice', { colorScheme: 'dark' });
  await dark.click(`.conv-item[data-id="${convId}"]`);
  await msgWith(dark, 'look @bob here').waitFor(T);
  const bg = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(23, 25, 29)');
  await shot(dark, '12-dark');
  await dark.context().close();
});
