// The demo chat page: plain DOM over the SDK's browser build (sdk/js/browser/caas-client.js).
// Served by the dev mode at /demo (local/src/demo.rs). No framework and no build step; the page's CSP
// allows scripts and styles from this origin only, so nothing here is inline.
//
// Rule of the page: user text only ever goes into the DOM as text (textContent, text nodes), never as
// HTML. The one piece of server HTML, a search hit's highlight, is rebuilt from text nodes and <mark>s.

import { connect, isDeleted } from '/demo/assets/caas-client.js';

const REACTIONS = ['👍', '❤️', '😂', '🎉'];
/** sessionStorage: the user of this tab (two tabs may be two users); localStorage: the last one. */
const USER_KEY = 'caas-demo:user';
/** localStorage: user id → name, learnt by any user of this browser (the server has no lookup by id). */
const NAMES_KEY = 'caas-demo:names';
const OPEN_KEY = 'caas-demo:open';
/** localStorage: name → user id of everyone who signed in here, so a reload can start while the server is down. */
const SIGNED_IN_KEY = 'caas-demo:signed-in';
const TYPING_IDLE_MS = 4000;
const ATTACHMENT_URL_TTL_MS = 4 * 60 * 1000;
const GROUP_GAP_MS = 5 * 60 * 1000;

// --------------------------------------------------------------------------------------- DOM helpers

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
};

/** `el('div', {class: 'x', testid: 'y', text: 'z', on: {click}}, ...children)`; strings become text nodes. */
function el(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key === 'testid') element.dataset.testid = value;
    else if (key === 'data') Object.assign(element.dataset, value);
    else if (key === 'on') for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    else if (key in element && typeof value !== 'string') element[key] = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

const ICONS = {
  reply: 'M9 14 4 9l5-5M4 9h10a6 6 0 0 1 6 6v4',
  edit: 'M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4Z',
  trash: 'M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6M10 11v6M14 11v6',
};

/** A small stroked SVG icon (built as DOM, like everything else). */
function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '2');
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

function show(element, visible) {
  element.hidden = !visible;
}

function toast(text, kind = 'info') {
  const item = el('div', { class: `toast toast-${kind}`, role: 'status', testid: 'toast', text });
  $('toasts').append(item);
  setTimeout(() => item.classList.add('toast-out'), 4200);
  setTimeout(() => item.remove(), 4600);
}

function describeError(error) {
  if (error && typeof error === 'object' && 'code' in error && error.code) return `${error.message || error.code} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}

// --------------------------------------------------------------------------------------- formatting

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'short', day: 'numeric' });
const shortDayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

function dayLabel(ms) {
  const now = Date.now();
  if (sameDay(ms, now)) return 'Today';
  if (sameDay(ms, now - 86_400_000)) return 'Yesterday';
  return dayFormat.format(ms);
}

function listTime(ms) {
  return sameDay(ms, Date.now()) ? timeFormat.format(ms) : shortDayFormat.format(ms);
}

function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

function hue(id) {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % 12;
}

/** A round badge with the initial; its colour comes from the id (one of 12 classes in the CSS). */
function fillAvatar(element, id, label, group = false) {
  element.textContent = group ? '#' : (label.trim()[0] || '?').toUpperCase();
  element.className = `avatar avatar-c${hue(id)}${group ? ' avatar-group' : ''}`;
  return element;
}

// --------------------------------------------------------------------------------------- names

/** The server names users by id only to their own token, so the page keeps what it learnt here. */
const names = loadNames();

function loadNames() {
  try {
    return JSON.parse(localStorage.getItem(NAMES_KEY) ?? '{}') ?? {};
  } catch {
    return {};
  }
}

function learnName(id, name) {
  if (!id || !name || names[id] === name) return false;
  names[id] = name;
  try {
    localStorage.setItem(NAMES_KEY, JSON.stringify(names));
  } catch {
    // private mode: names last as long as the page
  }
  return true;
}

function knownName(id) {
  if (app.me && id === app.me.id) return app.me.name;
  return names[id];
}

function nameOf(id) {
  const known = knownName(id);
  if (known === undefined) lookUpName(id);
  return known ?? `user ${id.replace(/-/g, '').slice(-4)}`;
}

/** Ids met without a name are asked about once, a batch at a time (`POST /demo/users {ids}`). */
const askedIds = new Set();
let lookupBatch = [];

function lookUpName(id) {
  if (askedIds.has(id)) return;
  askedIds.add(id);
  lookupBatch.push(id);
  if (lookupBatch.length > 1) return;
  queueMicrotask(async () => {
    const ids = lookupBatch.splice(0, lookupBatch.length);
    for (let start = 0; start < ids.length; start += 20) {
      try {
        const { users } = await postJson('/demo/users', { ids: ids.slice(start, start + 20) });
        let learnt = false;
        for (const user of users) learnt = learnName(user.user_id, user.name) || learnt;
        if (learnt && app.client) refreshAll();
      } catch {
        // Names are a nicety: the short id stays.
      }
    }
  });
}

// Another tab of this browser learnt a name: show it here too.
window.addEventListener('storage', (event) => {
  if (event.key !== NAMES_KEY) return;
  Object.assign(names, loadNames());
  if (app.client) refreshAll();
});

// --------------------------------------------------------------------------------------- demo endpoints

async function postJson(path, body) {
  let response;
  try {
    response = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch {
    const error = new Error('the server cannot be reached');
    error.code = 'network';
    throw error;
  }
  const parsed = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = new Error(parsed?.error?.message ?? `HTTP ${response.status}`);
    error.code = parsed?.error?.code ?? `http_${response.status}`;
    throw error;
  }
  return parsed;
}

/** `POST /demo/token {name}`: the token endpoint's answer for this demo user. */
const fetchToken = (name) => postJson('/demo/token', { name });

/** `POST /demo/users {names}`: user ids by name (the users are created when new). */
async function resolveUsers(list) {
  const { users } = await postJson('/demo/users', { names: list });
  for (const user of users) learnName(user.user_id, user.name);
  return users;
}

// --------------------------------------------------------------------------------------- app state

const app = {
  /** `{id, name}` of the signed-in user. */
  me: undefined,
  client: undefined,
  /** Unsubscribes of the client's listeners. */
  offs: [],
  conversations: [],
  openId: undefined,
  handle: undefined,
  handleOffs: [],
  items: [],
  /** The message the composer replies to, or edits. */
  replyTo: undefined,
  editing: undefined,
  typingSent: false,
  typingTimer: undefined,
  markingRead: false,
  /** The open conversation has caught up at least once. */
  synced: false,
  /** conversation id → the highest seq a read mark was sent for. */
  marked: new Map(),
  /** Direct conversation id → 'pending' | 'mismatch': the check of the name its title suggests. */
  nameChecks: new Map(),
  searchSeq: 0,
};

// --------------------------------------------------------------------------------------- sign in

function startPage() {
  wireStatic();
  const remembered = sessionStorage.getItem(USER_KEY) ?? localStorage.getItem(USER_KEY);
  if (remembered) {
    $('signin-name').value = remembered;
    void signIn(remembered);
  } else {
    showSignIn();
  }
}

function showSignIn(message) {
  show($('app'), false);
  show($('signin'), true);
  const error = $('signin-error');
  error.textContent = message ?? '';
  show(error, Boolean(message));
  document.title = 'CaaS demo chat';
  $('signin-name').focus();
}

async function signIn(rawName) {
  const name = rawName.trim();
  if (!name) return showSignIn('Type a name first.');
  const submit = document.querySelector('[data-testid="signin-submit"]');
  submit.disabled = true;
  let first;
  let offlineId;
  try {
    first = await fetchToken(name);
  } catch (error) {
    // The server cannot be reached, but this user signed in here before: start offline. Unsent messages
    // kept in IndexedDB under the user's id show again (and go out once the server answers); the SDK
    // keeps asking for a token with backoff.
    offlineId = error.code === 'network' ? signedInId(name) : undefined;
    if (!offlineId) {
      submit.disabled = false;
      return showSignIn(`Could not sign in: ${error.message}`);
    }
  }
  submit.disabled = false;
  sessionStorage.setItem(USER_KEY, name);
  localStorage.setItem(USER_KEY, name);
  app.me = first ? { id: first.user.id, name: first.user.display_name || first.user.external_id || name } : { id: offlineId, name: knownName(offlineId) ?? name };
  learnName(app.me.id, app.me.name);
  rememberSignedIn(name, app.me.id);

  let handed = first;
  const client = connect({
    // The first token was fetched above; the SDK asks again whenever it needs a new one.
    tokenProvider: () => {
      const token = handed;
      handed = undefined;
      return token ? Promise.resolve(token) : fetchToken(name);
    },
    apiUrl: location.origin,
    // The SDK's default key, given before the first token so an offline start restores the outbox.
    storageKey: `outbox:${app.me.id}`,
  });
  app.client = client;
  app.offs = [
    client.on('state', (state) => {
      renderState(state);
      updateEmptyState();
      if (state !== 'online') return;
      // Caught up: a conversation remembered from before that is not listed any more is gone.
      if (app.openId && !client.conversations().some((c) => c.id === app.openId)) closeConversation();
      if (app.handle && !app.synced) awaitSynced(app.handle);
      maybeMarkRead();
    }),
    client.on('conversations', (list) => {
      const wasListed = app.openId !== undefined && app.conversations.some((c) => c.id === app.openId);
      app.conversations = list;
      // Left, or removed from it.
      if (wasListed && !list.some((c) => c.id === app.openId)) closeConversation();
      renderConversations();
      maybeMarkRead();
    }),
    client.on('session_ended', (ended) => {
      toast(`Signed out: ${ended.reason || ended.code}`, 'error');
      signOut();
    }),
    client.on('presence', () => {
      if (app.openId) renderChatHead();
    }),
    client.on('error', (error) => console.warn('caas:', error)),
  ];

  show($('signin'), false);
  show($('app'), true);
  $('me-name').textContent = app.me.name;
  fillAvatar($('me-avatar'), app.me.id, app.me.name);
  renderState(client.state);
  renderConversations();
  const reopen = sessionStorage.getItem(`${OPEN_KEY}:${app.me.id}`);
  if (reopen) openConversation(reopen);
}

function signedInId(name) {
  try {
    return JSON.parse(localStorage.getItem(SIGNED_IN_KEY) ?? '{}')?.[name];
  } catch {
    return undefined;
  }
}

function rememberSignedIn(name, id) {
  try {
    const known = JSON.parse(localStorage.getItem(SIGNED_IN_KEY) ?? '{}') ?? {};
    if (known[name] === id) return;
    localStorage.setItem(SIGNED_IN_KEY, JSON.stringify({ ...known, [name]: id }));
  } catch {
    // private mode: no offline start
  }
}

function signOut() {
  closeConversation();
  for (const off of app.offs) off();
  app.offs = [];
  // Ends the session on the server (its token stops working), then closes the socket.
  const client = app.client;
  client?.logout().catch(() => client.close());
  app.client = undefined;
  app.me = undefined;
  app.conversations = [];
  app.marked.clear();
  app.nameChecks.clear();
  closeSearch();
  $('conversation-list').replaceChildren();
  sessionStorage.removeItem(USER_KEY);
  localStorage.removeItem(USER_KEY);
  $('signin-name').value = '';
  showSignIn();
}

function renderState(state) {
  const badge = $('connection-state');
  badge.dataset.state = state;
  badge.textContent = state;
  badge.title = {
    connecting: 'Connecting to the socket node…',
    resuming: 'Connected; catching up on what was missed',
    online: 'Connected and up to date',
    offline: 'Disconnected; retrying',
  }[state] ?? state;
}

// --------------------------------------------------------------------------------------- conversation list

function otherMember(conversation) {
  return conversation.member_ids.find((id) => id !== app.me?.id);
}

function conversationTitle(conversation) {
  if (conversation.kind === 'group') {
    if (conversation.name) return conversation.name;
    return conversation.member_ids.filter((id) => id !== app.me?.id).map(nameOf).join(', ') || 'Group';
  }
  const other = otherMember(conversation);
  if (!other) return 'Just you';
  if (knownName(other)) return knownName(other);
  const guessed = app.nameChecks.get(conversation.id) === 'mismatch' ? undefined : nameFromDirectTitle(conversation);
  return guessed ?? nameOf(other);
}

/**
 * Direct conversations started here are named "alice & bob", which tells the other side who "alice"
 * is. The guess is checked against `/demo/users` before it is learnt, so a name cannot be spoofed.
 */
function nameFromDirectTitle(conversation) {
  const title = conversation.name;
  const me = app.me?.name;
  if (!title || !me) return undefined;
  const separator = ' & ';
  if (title.startsWith(me + separator)) return title.slice(me.length + separator.length) || undefined;
  if (title.endsWith(separator + me)) return title.slice(0, title.length - me.length - separator.length) || undefined;
  return undefined;
}

function checkDirectNames() {
  for (const conversation of app.conversations) {
    if (conversation.kind !== 'direct' || app.nameChecks.has(conversation.id)) continue;
    const other = otherMember(conversation);
    const guessed = nameFromDirectTitle(conversation);
    if (!other || knownName(other) || !guessed) continue;
    app.nameChecks.set(conversation.id, 'pending');
    resolveUsers([guessed])
      .then(([user]) => {
        if (user?.user_id !== other) app.nameChecks.set(conversation.id, 'mismatch');
        refreshAll();
      })
      .catch(() => app.nameChecks.delete(conversation.id));
  }
}

function previewText(conversation) {
  const message = conversation.last_message;
  if (!message) return conversation.kind === 'group' ? 'Group created' : 'No messages yet';
  let text;
  if (isDeleted(message)) text = 'message deleted';
  else if (message.text) text = message.text;
  else if (message.attachments?.length) text = message.attachments[0].content_type.startsWith('image/') ? '📷 Photo' : `📎 ${message.attachments[0].filename}`;
  else text = '';
  const who = message.sender_id === app.me?.id ? 'You' : conversation.kind === 'group' ? nameOf(message.sender_id) : '';
  return who ? `${who}: ${text}` : text;
}

function isVisible() {
  return document.visibilityState !== 'hidden';
}

function renderConversations() {
  checkDirectNames();
  const list = $('conversation-list');
  const rows = app.conversations.map((conversation) => {
    const title = conversationTitle(conversation);
    const open = conversation.id === app.openId;
    // The open conversation is being read: its count is about to be marked.
    const unread = open && isVisible() ? 0 : conversation.unread_count;
    const when = conversation.last_message?.created_at ?? conversation.created_at;
    const group = conversation.kind === 'group';
    return el(
      'li',
      {},
      el(
        'button',
        {
          type: 'button',
          class: `conversation${open ? ' is-open' : ''}${unread > 0 ? ' has-unread' : ''}`,
          testid: 'conversation-item',
          data: { conversationId: conversation.id, title, kind: conversation.kind },
          'aria-current': open ? 'true' : undefined,
          on: { click: () => openConversation(conversation.id) },
        },
        fillAvatar(el('span', { 'aria-hidden': 'true' }), group ? conversation.id : (otherMember(conversation) ?? conversation.id), title, group),
        el(
          'span',
          { class: 'conversation-main' },
          el('span', { class: 'conversation-top' }, el('span', { class: 'conversation-title', testid: 'conversation-item-title', text: title }), el('time', { class: 'conversation-time', text: listTime(when) })),
          el(
            'span',
            { class: 'conversation-bottom' },
            el('span', { class: 'conversation-preview', testid: 'conversation-preview', text: previewText(conversation) }),
            unread > 0 ? el('span', { class: 'unread-badge', testid: 'unread-badge', 'aria-label': `${unread} unread`, text: unread > 99 ? '99+' : String(unread) }) : undefined,
          ),
        ),
      ),
    );
  });
  // Keyboard users keep their place when the list is redrawn.
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.conversationId : undefined;
  list.replaceChildren(...rows);
  if (focused) list.querySelector(`[data-conversation-id="${CSS.escape(focused)}"]`)?.focus();
  show($('conversation-empty'), rows.length === 0);
  const total = app.conversations.reduce((sum, c) => sum + (c.id === app.openId && isVisible() ? 0 : c.unread_count), 0);
  document.title = total > 0 ? `(${total}) CaaS demo chat` : 'CaaS demo chat';
  if (app.openId) renderChatHead();
}

function refreshAll() {
  renderConversations();
  if (app.handle) renderMessages(app.items);
}

// --------------------------------------------------------------------------------------- open conversation

function openConversation(conversationId) {
  if (!app.client) return;
  closeSearchPanelOnNarrow();
  if (app.openId === conversationId) {
    document.body.classList.add('chat-open');
    return;
  }
  closeConversation();
  app.openId = conversationId;
  sessionStorage.setItem(`${OPEN_KEY}:${app.me.id}`, conversationId);
  const handle = app.client.open(conversationId);
  app.handle = handle;
  app.handleOffs = [
    handle.onChange((items) => {
      renderMessages(items);
      maybeMarkRead();
    }),
    handle.onTyping(renderTyping),
  ];
  document.body.classList.add('chat-open');
  show($('chat-placeholder'), false);
  show($('chat-view'), true);
  $('message-list').replaceChildren();
  rendered.clear();
  renderChatHead();
  app.synced = false;
  renderMessages(handle.items(), true);
  renderTyping(handle.typingUsers());
  awaitSynced(handle);
  const conversation = app.conversations.find((c) => c.id === conversationId);
  if (conversation?.kind === 'direct') {
    const other = otherMember(conversation);
    if (other) app.client.watchPresence([other]).catch(() => undefined);
  }
  renderConversations();
  resetComposer();
  if (window.matchMedia('(min-width: 760px)').matches) $('composer-input').focus();
}

function closeConversation() {
  if (app.me && app.openId) sessionStorage.removeItem(`${OPEN_KEY}:${app.me.id}`);
  stopTyping();
  for (const off of app.handleOffs) off();
  app.handleOffs = [];
  app.handle?.close();
  app.handle = undefined;
  app.openId = undefined;
  app.items = [];
  rendered.clear();
  $('message-list').replaceChildren();
  show($('chat-view'), false);
  show($('chat-placeholder'), true);
  show($('typing'), false);
  document.body.classList.remove('chat-open');
}

function renderChatHead() {
  const conversation = app.conversations.find((c) => c.id === app.openId);
  if (!conversation) return;
  const title = conversationTitle(conversation);
  const group = conversation.kind === 'group';
  $('chat-title').textContent = title;
  fillAvatar($('chat-avatar'), group ? conversation.id : (otherMember(conversation) ?? conversation.id), title, group);
  let subtitle;
  if (group) {
    const members = conversation.member_ids.map((id) => (id === app.me.id ? 'you' : nameOf(id)));
    subtitle = `${conversation.member_ids.length} members · ${members.join(', ')}`;
  } else {
    const other = otherMember(conversation);
    const online = other ? app.client?.presence(other) : undefined;
    subtitle = online === true ? 'online' : online === false ? 'offline' : 'direct message';
  }
  $('chat-subtitle').textContent = subtitle;
}

/** Once the open conversation has caught up: scroll to the newest, mark read, say so if it is empty. */
function awaitSynced(handle) {
  handle
    .synced()
    .then(() => {
      if (app.handle !== handle) return;
      app.synced = true;
      renderMessages(handle.items(), true);
      maybeMarkRead();
    })
    .catch(() => {
      // Offline: tried again when the client is back online.
      if (app.handle === handle) updateEmptyState();
    });
}

/** The line above the messages: loading, waiting, or an invitation to write the first one. */
function updateEmptyState() {
  if (loadingOlder) return;
  if (!app.handle || app.items.length > 0) return setHistoryStatus(undefined);
  const state = app.client?.state;
  if (app.synced) setHistoryStatus('No messages yet. Say hello 👋');
  else setHistoryStatus(state === 'online' || state === 'resuming' ? 'Loading…' : 'Waiting for the connection…');
}

function setHistoryStatus(text) {
  const status = $('history-status');
  status.textContent = text ?? '';
  show(status, Boolean(text));
}

/** Moves the read horizon when the open conversation shows messages past it. */
function maybeMarkRead() {
  const handle = app.handle;
  if (!handle || !isVisible() || app.markingRead) return;
  const conversation = app.conversations.find((c) => c.id === handle.conversationId);
  const messages = handle.messages();
  const last = messages[messages.length - 1];
  if (!conversation || !last) return;
  const already = app.marked.get(handle.conversationId) ?? 0;
  if (last.seq <= conversation.read_seq || last.seq <= already) return;
  app.markingRead = true;
  app.marked.set(handle.conversationId, last.seq);
  handle
    .markRead(last.seq)
    .then(
      () => {
        app.markingRead = false;
        // More may have arrived meanwhile.
        if (app.handle === handle) setTimeout(maybeMarkRead, 0);
      },
      () => {
        // Offline, most likely: the next change or reconnect tries again.
        app.markingRead = false;
        app.marked.set(handle.conversationId, already);
      },
    );
}

document.addEventListener('visibilitychange', () => {
  if (!app.client) return;
  renderConversations();
  maybeMarkRead();
});

// --------------------------------------------------------------------------------------- messages

let loadingOlder = false;

/** key → {element, signature}: elements are kept while their content is unchanged (images stay loaded). */
const rendered = new Map();
/** attachment id → {at, promise of the download URLs}. */
const attachmentUrls = new Map();
/** attachment id → object URL of the local file, shown while its message is being sent. */
const localPreviews = new Map();

function itemKey(item) {
  return item.kind === 'message' ? `m:${item.message.id}` : `p:${item.send.client_msg_id}`;
}

/** The fields every item is drawn from, pending or confirmed. */
function itemView(item) {
  if (item.kind === 'message') {
    const m = item.message;
    return {
      id: m.id,
      clientMsgId: m.client_msg_id,
      seq: m.seq,
      senderId: m.sender_id,
      text: m.text,
      replyTo: m.reply_to,
      attachments: m.attachments ?? [],
      createdAt: m.created_at,
      edited: m.edited_at !== undefined && m.edited_at !== null,
      deleted: isDeleted(m),
      reactions: m.reactions ?? [],
      state: 'sent',
      error: undefined,
      message: m,
    };
  }
  const s = item.send;
  return {
    id: s.message_id,
    clientMsgId: s.client_msg_id,
    seq: s.seq,
    senderId: app.me.id,
    text: s.kind === 'send' ? s.text : 'Forwarded message',
    replyTo: s.kind === 'send' ? s.reply_to : undefined,
    attachments: (s.kind === 'send' ? (s.attachments ?? []) : []).map((id) => ({ id, pending: true })),
    createdAt: s.created_at,
    edited: false,
    deleted: false,
    reactions: [],
    state: s.state,
    error: s.error,
    message: undefined,
  };
}

function renderMessages(items, force = false) {
  const previousFirst = app.items.length > 0 ? itemKey(app.items[0]) : undefined;
  app.items = items;
  const container = $('messages');
  const list = $('message-list');
  const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 120;
  const previousHeight = container.scrollHeight;
  const byId = new Map();
  for (const item of items) if (item.kind === 'message') byId.set(item.message.id, item.message);

  const nodes = [];
  const seen = new Set();
  let previous;
  for (const item of items) {
    const view = itemView(item);
    const newDay = !previous || !sameDay(previous.createdAt, view.createdAt);
    if (newDay) {
      const key = `d:${new Date(view.createdAt).toDateString()}`;
      nodes.push(reuse(key, dayLabel(view.createdAt), () => el('div', { class: 'day-separator', role: 'separator' }, el('span', { text: dayLabel(view.createdAt) })), seen));
    }
    const startsGroup = newDay || previous.senderId !== view.senderId || view.createdAt - previous.createdAt > GROUP_GAP_MS || Boolean(view.replyTo);
    const parent = view.replyTo ? byId.get(view.replyTo) : undefined;
    const signature = JSON.stringify([
      view.text, view.state, view.error?.code, view.edited, view.deleted, view.reactions, view.attachments.map((a) => a.id),
      startsGroup, nameOf(view.senderId), parent ? [parent.text, parent.version, nameOf(parent.sender_id)] : view.replyTo ?? null, view.seq,
      app.editing?.id === view.id,
    ]);
    nodes.push(reuse(itemKey(item), signature, () => messageElement(view, startsGroup, parent), seen));
    previous = view;
  }
  for (const [key, entry] of rendered) if (!seen.has(key)) {
    rendered.delete(key);
    entry.element.remove();
  }
  // Put the nodes in order, moving only those out of place (moving an <img> keeps it loaded).
  let cursor = list.firstElementChild;
  for (const node of nodes) {
    if (node === cursor) cursor = cursor.nextElementSibling;
    else list.insertBefore(node, cursor);
  }

  const olderAbove = previousFirst !== undefined && items.length > 0 && itemKey(items[0]) !== previousFirst && rendered.has(previousFirst);
  updateEmptyState();
  if (olderAbove && !nearBottom) {
    // Older messages came in above: keep what the reader was looking at in place.
    container.scrollTop += container.scrollHeight - previousHeight;
  } else if (nearBottom || force) {
    scrollToBottom();
  }
}

function reuse(key, signature, build, seen) {
  seen.add(key);
  const current = rendered.get(key);
  if (current && current.signature === signature) return current.element;
  const element = build();
  if (current) current.element.replaceWith(element);
  rendered.set(key, { element, signature });
  return element;
}

function scrollToBottom() {
  const container = $('messages');
  container.scrollTop = container.scrollHeight;
}

function messageElement(view, startsGroup, parent) {
  const own = view.senderId === app.me.id;
  const classes = ['message', own ? 'own' : 'theirs', `state-${view.state}`];
  if (startsGroup) classes.push('group-start');
  if (view.deleted) classes.push('deleted');
  if (app.editing?.id === view.id && view.id) classes.push('editing');

  const bubble = el('div', { class: `bubble${view.attachments.length && !view.text && !view.deleted ? ' media-only' : ''}` });
  if (view.replyTo) bubble.append(quoteElement(view.replyTo, parent));
  if (view.deleted) {
    bubble.append(el('div', { class: 'message-text deleted-text', testid: 'message-text', text: 'message deleted' }));
  } else {
    if (view.attachments.length) bubble.append(el('div', { class: 'attachments' }, view.attachments.map((a) => attachmentElement(a))));
    if (view.text) bubble.append(el('div', { class: 'message-text', testid: 'message-text', text: view.text }));
  }
  const status = statusText(view);
  bubble.append(
    el(
      'div',
      { class: 'message-meta' },
      view.edited && !view.deleted ? el('span', { class: 'edited', testid: 'message-edited', text: 'edited' }) : undefined,
      el('time', { class: 'message-time', datetime: new Date(view.createdAt).toISOString(), title: new Date(view.createdAt).toLocaleString(), text: timeFormat.format(view.createdAt) }),
      own && status ? el('span', { class: 'message-status', testid: 'message-status', text: status }) : undefined,
    ),
  );

  const body = el(
    'div',
    { class: 'message-body' },
    startsGroup && !own ? el('div', { class: 'message-sender', testid: 'message-sender', text: nameOf(view.senderId) }) : undefined,
    bubble,
  );
  if (view.reactions.some((r) => r.count > 0)) body.append(reactionsElement(view));
  if (view.state === 'failed') body.append(failedElement(view));
  if (view.message && !view.deleted) body.append(actionsElement(view, own));

  const element = el(
    'div',
    {
      class: classes.join(' '),
      testid: 'message',
      tabindex: view.message && !view.deleted ? '0' : undefined,
      data: { messageId: view.id ?? '', clientMsgId: view.clientMsgId, seq: view.seq ?? '', state: view.state, sender: nameOf(view.senderId), own: String(own) },
    },
    own ? undefined : startsGroup ? fillAvatar(el('span', { 'aria-hidden': 'true' }), view.senderId, nameOf(view.senderId)) : el('span', { class: 'avatar-spacer' }),
    body,
  );
  return element;
}

function statusText(view) {
  switch (view.state) {
    case 'pending':
      return 'sending…';
    case 'accepted':
      return 'sent';
    case 'failed':
      return 'not sent';
    default:
      return '';
  }
}

function quoteElement(parentId, parent) {
  const text = !parent ? 'an earlier message' : isDeleted(parent) ? 'message deleted' : parent.text || (parent.attachments?.length ? '📷 Photo' : '');
  return el(
    'button',
    { type: 'button', class: 'quote', testid: 'message-quote', title: 'Show the message replied to', on: { click: () => focusMessage(parentId) } },
    el('span', { class: 'quote-sender', text: parent ? nameOf(parent.sender_id) : 'Reply' }),
    el('span', { class: 'quote-text', testid: 'message-quote-text', text }),
  );
}

function attachmentElement(attachment) {
  const preview = localPreviews.get(attachment.id);
  if (attachment.pending) {
    return el('div', { class: 'attachment-image' }, preview ? el('img', { class: 'thumbnail is-local', src: preview, alt: 'Image being sent' }) : el('span', { class: 'thumbnail-placeholder', text: '📷' }));
  }
  if (!attachment.content_type.startsWith('image/')) {
    const link = el('a', { class: 'file-chip', target: '_blank', rel: 'noopener noreferrer', testid: 'message-file' }, el('span', { class: 'file-icon', text: '📎' }), el('span', { class: 'file-name', text: attachment.filename }), el('span', { class: 'file-size', text: formatBytes(attachment.size) }));
    attachmentUrl(attachment.id).then((info) => (link.href = info.url)).catch(() => link.classList.add('is-broken'));
    return link;
  }
  const image = el('img', { class: 'thumbnail', alt: attachment.filename, testid: 'message-thumbnail', decoding: 'async' });
  const link = el('a', { class: 'attachment-image is-loading', target: '_blank', rel: 'noopener noreferrer', title: `${attachment.filename} · ${formatBytes(attachment.size)}` }, image);
  let retried = false;
  const load = () =>
    attachmentUrl(attachment.id, retried)
      .then((info) => {
        image.src = info.thumbnail_url ?? info.url;
        link.href = info.url;
      })
      .catch(() => {
        link.classList.remove('is-loading');
        link.classList.add('is-broken');
      });
  image.addEventListener('load', () => {
    link.classList.remove('is-loading');
    const container = $('messages');
    if (container.scrollHeight - container.scrollTop - container.clientHeight < 400) scrollToBottom();
  });
  image.addEventListener('error', () => {
    if (retried || !image.src) return;
    retried = true; // the 5-minute URL may have lapsed: ask for a fresh one once
    void load();
  });
  void load();
  return link;
}

/** `GET /api/v1/media/{id}` (5-minute URLs), shared by every element showing the attachment. */
function attachmentUrl(id, fresh = false) {
  const cached = attachmentUrls.get(id);
  if (cached && !fresh && Date.now() - cached.at < ATTACHMENT_URL_TTL_MS) return cached.promise;
  const promise = app.client.attachment(id);
  attachmentUrls.set(id, { at: Date.now(), promise });
  promise.catch(() => attachmentUrls.delete(id));
  return promise;
}

function reactionsElement(view) {
  return el(
    'div',
    { class: 'reactions', testid: 'message-reactions' },
    view.reactions
      .filter((r) => r.count > 0)
      .map((r) =>
        el(
          'button',
          {
            type: 'button',
            class: `reaction${r.mine ? ' mine' : ''}`,
            testid: 'reaction',
            data: { emoji: r.emoji, count: String(r.count), mine: String(r.mine) },
            'aria-pressed': String(r.mine),
            title: r.mine ? 'Remove your reaction' : 'React',
            on: { click: () => react(view, r.emoji, !r.mine) },
          },
          el('span', { class: 'reaction-emoji', text: r.emoji }),
          el('span', { class: 'reaction-count', text: String(r.count) }),
        ),
      ),
  );
}

function failedElement(view) {
  const code = view.error?.code ?? 'error';
  return el(
    'div',
    { class: 'send-error', testid: 'message-error', role: 'alert' },
    el(
      'div',
      { class: 'send-error-line' },
      el('span', { class: 'send-error-code', text: `Not sent: ${code}` }),
      el('button', { type: 'button', class: 'link-button', testid: 'message-retry', text: 'Retry', on: { click: () => app.client.retrySend(view.clientMsgId) } }),
      el('button', { type: 'button', class: 'link-button', testid: 'message-discard', text: 'Discard', on: { click: () => app.client.discardSend(view.clientMsgId) } }),
    ),
    view.error?.message ? el('div', { class: 'send-error-message', text: view.error.message }) : undefined,
  );
}

function actionsElement(view, own) {
  const mine = new Map(view.reactions.map((r) => [r.emoji, r.mine]));
  const actions = el(
    'div',
    { class: 'message-actions', testid: 'message-actions', role: 'toolbar', 'aria-label': 'Message actions' },
    REACTIONS.map((emoji) =>
      el('button', {
        type: 'button',
        class: `action-emoji${mine.get(emoji) ? ' mine' : ''}`,
        testid: 'react-button',
        data: { emoji },
        title: mine.get(emoji) ? `Remove ${emoji}` : `React ${emoji}`,
        text: emoji,
        on: { click: () => react(view, emoji, !mine.get(emoji)) },
      }),
    ),
    el('span', { class: 'action-divider' }),
    el('button', { type: 'button', class: 'action', testid: 'reply-button', title: 'Reply', 'aria-label': 'Reply', on: { click: () => startReply(view.message) } }, icon('reply')),
    own ? el('button', { type: 'button', class: 'action', testid: 'edit-button', title: 'Edit', 'aria-label': 'Edit', on: { click: () => startEdit(view.message) } }, icon('edit')) : undefined,
    own ? deleteButton(view) : undefined,
  );
  return actions;
}

/** Delete asks twice: the first click arms the button for a few seconds. */
function deleteButton(view) {
  const button = el('button', { type: 'button', class: 'action action-danger', testid: 'delete-button', title: 'Delete', 'aria-label': 'Delete' }, icon('trash'));
  let timer;
  button.addEventListener('click', () => {
    if (button.dataset.armed !== 'true') {
      button.dataset.armed = 'true';
      button.replaceChildren('Delete?');
      button.title = 'Click again to delete';
      timer = setTimeout(() => {
        button.dataset.armed = 'false';
        button.replaceChildren(icon('trash'));
        button.title = 'Delete';
      }, 3000);
      return;
    }
    clearTimeout(timer);
    app.client.delete(view.message.conversation_id, view.message.id).catch((error) => toast(`Could not delete: ${describeError(error)}`, 'error'));
  });
  return button;
}

function react(view, emoji, active) {
  if (!view.message) return;
  app.client.react(view.message.conversation_id, view.message.id, emoji, active).catch((error) => toast(`Could not react: ${describeError(error)}`, 'error'));
}

/** Scrolls to a message (paging back for it if needed) and flashes it. */
async function focusMessage(messageId) {
  const handle = app.handle;
  if (!handle) return;
  for (let page = 0; page < 20; page += 1) {
    const element = document.querySelector(`.message[data-message-id="${CSS.escape(messageId)}"]`);
    if (element) {
      element.scrollIntoView({ block: 'center', behavior: 'smooth' });
      element.classList.remove('flash');
      void element.offsetWidth;
      element.classList.add('flash');
      return;
    }
    if (!handle.hasOlder || app.handle !== handle || loadingOlder) break;
    loadingOlder = true;
    setHistoryStatus('Loading older messages…');
    try {
      await handle.loadOlder();
    } catch {
      break;
    } finally {
      loadingOlder = false;
      updateEmptyState();
    }
  }
  toast('That message is no longer available.');
}

// Older history: loads as the reader scrolls to the top.
function onMessagesScroll() {
  const handle = app.handle;
  if (!handle || loadingOlder || !handle.hasOlder || $('messages').scrollTop > 80) return;
  loadingOlder = true;
  setHistoryStatus('Loading older messages…');
  handle
    .loadOlder()
    .catch(() => undefined)
    .finally(() => {
      loadingOlder = false;
      updateEmptyState();
    });
}

// --------------------------------------------------------------------------------------- typing

function renderTyping(userIds) {
  const box = $('typing');
  const who = userIds.map(nameOf);
  let text = '';
  if (who.length === 1) text = `${who[0]} is typing…`;
  else if (who.length === 2) text = `${who[0]} and ${who[1]} are typing…`;
  else if (who.length > 2) text = `${who.length} people are typing…`;
  $('typing-text').textContent = text;
  show(box, who.length > 0);
}

/** As the user types: a start (the SDK sends one at most every 3 s), and a stop after a pause. */
function noteTyping() {
  if (!app.handle || app.editing) return;
  const text = $('composer-input').value.trim();
  if (!text) return stopTyping();
  app.typingSent = true;
  app.handle.typing(true).catch(() => undefined);
  clearTimeout(app.typingTimer);
  app.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(app.typingTimer);
  app.typingTimer = undefined;
  if (!app.typingSent || !app.handle) return;
  app.typingSent = false;
  app.handle.typing(false).catch(() => undefined);
}

// --------------------------------------------------------------------------------------- composer

function startReply(message) {
  app.editing = undefined;
  app.replyTo = message;
  showContext(`Replying to ${nameOf(message.sender_id)}`, message.text || '📷 Photo');
  $('composer-input').focus();
}

function startEdit(message) {
  app.replyTo = undefined;
  app.editing = message;
  showContext('Editing message', message.text);
  const input = $('composer-input');
  input.value = message.text;
  autoGrow();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
  renderMessages(app.items);
}

function showContext(label, body) {
  $('composer-context-label').textContent = label;
  $('composer-context-body').textContent = body;
  show($('composer-context'), true);
}

function resetComposer() {
  const wasEditing = Boolean(app.editing);
  app.replyTo = undefined;
  app.editing = undefined;
  show($('composer-context'), false);
  const input = $('composer-input');
  input.value = '';
  autoGrow();
  if (wasEditing) renderMessages(app.items);
}

function autoGrow() {
  const input = $('composer-input');
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function submitComposer() {
  const handle = app.handle;
  if (!handle) return;
  const input = $('composer-input');
  const text = input.value.replace(/\s+$/, '');
  if (!text.trim()) return;
  if (app.editing) {
    const message = app.editing;
    resetComposer();
    if (text !== message.text) {
      app.client.edit(message.conversation_id, message.id, text).catch((error) => toast(`Could not edit: ${describeError(error)}`, 'error'));
    }
    return;
  }
  const options = app.replyTo ? { reply_to: app.replyTo.id } : {};
  handle.send(text, options);
  stopTyping();
  resetComposer();
  scrollToBottom();
}

async function uploadFile(file) {
  const handle = app.handle;
  if (!handle || !file) return;
  if (!file.type.startsWith('image/')) return toast('Pick an image (PNG, JPEG, GIF or WebP).', 'error');
  const status = $('upload-status');
  const bar = $('upload-progress');
  $('upload-name').textContent = file.name;
  bar.value = 0;
  $('upload-percent').textContent = '0%';
  status.dataset.state = 'uploading';
  show(status, true);
  try {
    const info = await app.client.upload({
      conversation_id: handle.conversationId,
      body: file,
      filename: file.name,
      content_type: file.type,
      onProgress: (sent, total) => {
        const percent = total > 0 ? Math.round((sent / total) * 100) : 100;
        bar.value = percent;
        $('upload-percent').textContent = `${percent}%`;
      },
    });
    localPreviews.set(info.id, URL.createObjectURL(file));
    const options = app.replyTo ? { reply_to: app.replyTo.id, attachments: [info.id] } : { attachments: [info.id] };
    app.client.send(handle.conversationId, '', options);
    if (app.replyTo) resetComposer();
    status.dataset.state = 'done';
    show(status, false);
    scrollToBottom();
  } catch (error) {
    status.dataset.state = 'failed';
    show(status, false);
    toast(`Upload failed: ${describeError(error)}`, 'error');
  }
}

// --------------------------------------------------------------------------------------- search

/**
 * A hit's `highlight` is HTML-escaped text with `<mark>` around matches. It is not parsed as HTML: it is
 * split on the two tags, and every piece is unescaped into a text node.
 */
function highlightNodes(highlight) {
  const nodes = [];
  const parts = highlight.split(/(<mark>|<\/mark>)/);
  let marked = false;
  for (const part of parts) {
    if (part === '<mark>') marked = true;
    else if (part === '</mark>') marked = false;
    else if (part) {
      const text = unescapeHtml(part);
      nodes.push(marked ? el('mark', { text }) : document.createTextNode(text));
    }
  }
  return nodes;
}

function unescapeHtml(text) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, entity) => {
    if (entity[0] === '#') {
      const code = entity[1] === 'x' || entity[1] === 'X' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
      return Number.isFinite(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all;
    }
    return named[entity.toLowerCase()] ?? all;
  });
}

let searchTimer;
function scheduleSearch() {
  clearTimeout(searchTimer);
  const query = $('search-input').value.trim();
  if (!query) return closeSearch();
  searchTimer = setTimeout(() => void runSearch(query), 300);
}

async function runSearch(query) {
  if (!app.client) return;
  clearTimeout(searchTimer);
  const seq = ++app.searchSeq;
  const panel = $('search-results');
  const hits = $('search-hits');
  show(panel, true);
  document.body.classList.add('searching');
  panel.dataset.state = 'loading';
  $('search-summary').textContent = `Searching for “${query}”…`;
  try {
    const result = await app.client.search({ q: query, limit: 30, sort: 'recent' });
    if (seq !== app.searchSeq) return;
    panel.dataset.state = 'done';
    $('search-summary').textContent = result.hits.length === 0 ? `No messages match “${query}”` : `${result.hits.length}${result.next_cursor ? '+' : ''} result${result.hits.length === 1 ? '' : 's'} for “${query}”`;
    hits.replaceChildren(
      ...result.hits.map((hit) => {
        const conversation = app.conversations.find((c) => c.id === hit.conversation_id);
        const where = conversation ? conversationTitle(conversation) : 'a conversation';
        return el(
          'li',
          {},
          el(
            'button',
            { type: 'button', class: 'search-hit', testid: 'search-hit', data: { messageId: hit.message_id, conversationId: hit.conversation_id }, on: { click: () => openHit(hit) } },
            el('span', { class: 'search-hit-top' }, el('span', { class: 'search-hit-where', text: `${nameOf(hit.sender_id)} in ${where}` }), el('time', { class: 'conversation-time', text: listTime(hit.created_at) })),
            el('span', { class: 'search-hit-text', testid: 'search-hit-highlight' }, highlightNodes(hit.highlight)),
          ),
        );
      }),
    );
  } catch (error) {
    if (seq !== app.searchSeq) return;
    panel.dataset.state = 'failed';
    $('search-summary').textContent = `Search failed: ${describeError(error)}`;
    hits.replaceChildren();
  }
}

function openHit(hit) {
  openConversation(hit.conversation_id);
  const handle = app.handle;
  if (!handle) return;
  handle
    .synced()
    .catch(() => undefined)
    .then(() => focusMessage(hit.message_id));
}

function closeSearch() {
  clearTimeout(searchTimer);
  app.searchSeq += 1;
  show($('search-results'), false);
  document.body.classList.remove('searching');
  $('search-hits').replaceChildren();
}

function closeSearchPanelOnNarrow() {
  if (!window.matchMedia('(min-width: 760px)').matches) {
    $('search-input').value = '';
    closeSearch();
  }
}

// --------------------------------------------------------------------------------------- new conversation

let newKind = 'direct';

function openNewDialog() {
  setNewKind('direct');
  $('new-direct-name').value = '';
  $('new-group-name').value = '';
  $('new-group-members').value = '';
  setNewError(undefined);
  $('new-dialog').showModal();
  $('new-direct-name').focus();
}

function setNewKind(kind) {
  newKind = kind;
  for (const tab of document.querySelectorAll('.segment')) tab.setAttribute('aria-selected', String(tab.dataset.kind === kind));
  show($('new-direct-fields'), kind === 'direct');
  show($('new-group-fields'), kind === 'group');
}

function setNewError(text) {
  $('new-error').textContent = text ?? '';
  show($('new-error'), Boolean(text));
}

async function submitNew() {
  const submit = $('new-submit');
  setNewError(undefined);
  const me = app.me.name;
  try {
    let conversation;
    if (newKind === 'direct') {
      const name = $('new-direct-name').value.trim();
      if (!name) return setNewError('Type the name of the person to chat with.');
      if (name === me) return setNewError('That is you: pick someone else.');
      submit.disabled = true;
      const [user] = await resolveUsers([name]);
      // The name tells the other side who started it (see nameFromDirectTitle).
      conversation = await app.client.createConversation({ kind: 'direct', member_ids: [user.user_id], name: `${me} & ${name}` });
    } else {
      const title = $('new-group-name').value.trim();
      const members = [...new Set($('new-group-members').value.split(',').map((n) => n.trim()).filter((n) => n && n !== me))];
      if (!title) return setNewError('Give the group a name.');
      if (members.length === 0) return setNewError('Name at least one other member.');
      submit.disabled = true;
      const users = await resolveUsers(members);
      conversation = await app.client.createConversation({ kind: 'group', member_ids: users.map((u) => u.user_id), name: title });
    }
    $('new-dialog').close();
    closeSearch();
    $('search-input').value = '';
    openConversation(conversation.id);
  } catch (error) {
    setNewError(`Could not start it: ${describeError(error)}`);
  } finally {
    submit.disabled = false;
  }
}

// --------------------------------------------------------------------------------------- wiring

function wireStatic() {
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void signIn($('signin-name').value);
  });
  $('switch-user').addEventListener('click', signOut);
  $('new-conversation').addEventListener('click', openNewDialog);
  $('new-cancel').addEventListener('click', () => $('new-dialog').close());
  $('new-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void submitNew();
  });
  for (const tab of document.querySelectorAll('.segment')) tab.addEventListener('click', () => setNewKind(tab.dataset.kind));
  $('new-dialog').addEventListener('click', (event) => {
    if (event.target === $('new-dialog')) $('new-dialog').close(); // a click on the backdrop
  });

  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const query = $('search-input').value.trim();
    if (query) void runSearch(query);
  });
  $('search-input').addEventListener('input', scheduleSearch);
  $('search-input').addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      $('search-input').value = '';
      closeSearch();
    }
  });
  $('search-close').addEventListener('click', () => {
    $('search-input').value = '';
    closeSearch();
  });

  $('chat-back').addEventListener('click', () => document.body.classList.remove('chat-open'));
  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });

  const input = $('composer-input');
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitComposer();
    } else if (event.key === 'Escape' && (app.replyTo || app.editing)) {
      event.preventDefault();
      resetComposer();
    }
  });
  input.addEventListener('input', () => {
    autoGrow();
    noteTyping();
  });
  input.addEventListener('blur', stopTyping);
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    submitComposer();
  });
  $('composer-context-cancel').addEventListener('click', resetComposer);
  $('attach-input').addEventListener('change', (event) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    void uploadFile(file);
  });
  // Images can be pasted or dropped into the conversation too.
  input.addEventListener('paste', (event) => {
    const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
    if (file) {
      event.preventDefault();
      void uploadFile(file);
    }
  });
  const chat = $('chat-view');
  chat.addEventListener('dragover', (event) => {
    if (event.dataTransfer?.types.includes('Files')) {
      event.preventDefault();
      chat.classList.add('drop-target');
    }
  });
  chat.addEventListener('dragleave', () => chat.classList.remove('drop-target'));
  chat.addEventListener('drop', (event) => {
    chat.classList.remove('drop-target');
    const file = [...(event.dataTransfer?.files ?? [])].find((f) => f.type.startsWith('image/'));
    if (file) {
      event.preventDefault();
      void uploadFile(file);
    }
  });
}

startPage();
