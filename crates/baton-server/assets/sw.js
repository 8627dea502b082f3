// baton's service worker: Web Push notifications (RFC 8291 messages from
// `baton serve`), shown with their buttons; a button POSTs the signed,
// single-use action link it carries (no session needed), and the result
// is shown; a tap on the notification opens the dashboard at its task.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let n;
  try {
    n = event.data ? event.data.json() : {};
  } catch {
    n = { title: 'baton', body: event.data ? event.data.text() : '' };
  }
  const urgent = n.kind === 'question' || n.kind === 'approval';
  event.waitUntil(self.registration.showNotification(n.title || 'baton', {
    body: n.body || '',
    tag: n.tag || 'baton',
    renotify: true,
    requireInteraction: urgent,
    actions: (n.actions || []).slice(0, 2),
    data: { links: n.links || {}, click: n.click || '/' },
  }));
});

self.addEventListener('notificationclick', (event) => {
  const { links, click } = event.notification.data || {};
  event.notification.close();
  const link = event.action && links ? links[event.action] : null;
  if (link) {
    event.waitUntil(fetch(link, { method: 'POST' })
      .then((r) => r.json())
      .then((r) => self.registration.showNotification(r.ok ? 'baton: done' : 'baton: nothing was done',
        { body: r.message || '', tag: 'baton-result' }))
      .catch(() => {}));
    return;
  }
  event.waitUntil(self.clients.openWindow(click || '/'));
});
