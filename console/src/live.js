// Live updates from the node (GET /api/events, server-sent events): `delivery`, `consent`,
// `alarm` and `status`, each with JSON data. EventSource reconnects by itself; the stream is
// closed on sign-out, and while it is down the views still work by reading the API.

const TYPES = ['delivery', 'consent', 'alarm', 'status'];

export class Live {
  /**
   * @param onEvent called with (type, data) for each event.
   * @param onDrop called with (closed) when the stream drops: the node ends an officer's stream
   *   when the session ends (signed out elsewhere, or the user revoked), and `closed` is true when
   *   the browser gave up reconnecting (the node refused the stream).
   */
  constructor(onEvent, onDrop = () => {}) {
    this.onEvent = onEvent;
    this.onDrop = onDrop;
    this.source = null;
  }

  open() {
    this.close();
    const source = new EventSource('/api/events');
    for (const type of TYPES) {
      source.addEventListener(type, (ev) => {
        let data;
        try {
          data = ev.data ? JSON.parse(ev.data) : null;
        } catch {
          return; // not JSON: nothing a view could use
        }
        this.onEvent(type, data);
      });
    }
    source.addEventListener('open', () => document.body.setAttribute('data-live', 'open'));
    source.addEventListener('error', () => {
      const closed = source.readyState === EventSource.CLOSED;
      document.body.setAttribute('data-live', closed ? 'closed' : 'retrying');
      if (this.source === source) this.onDrop(closed);
    });
    this.source = source;
  }

  close() {
    this.source?.close();
    this.source = null;
    document.body.removeAttribute('data-live');
  }
}
