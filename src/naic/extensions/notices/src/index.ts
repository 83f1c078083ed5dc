/*
 * naic-hub-notices: JupyterLab notifications for a session's notices ("30 minutes left",
 * the culler's warning), polled from the session server's GET {baseUrl}naic/api/notices
 * (served by naic.extensions.server). Built into ../labextension/naic-hub-notices with
 * `npm run build:prod` (see ../labextension/README.md).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

const NAME = 'naic-hub-notices';
const EXTEND = 'naic:extend-session';
const SHOWN_KEY = `${NAME}:shown`;
const DEFAULT_POLL_S = 30;
const MIN_POLL_S = 2;
const TYPES: ReadonlyArray<Notification.TypeOptions> = [
  'info',
  'warning',
  'error',
  'success'
];

/**
 * One notice as GET naic/api/notices gives it (naic.extensions.session.session_notices).
 */
interface INotice {
  id: string;
  text: string;
  level?: string;
  can_extend?: boolean;
  /** A link the notice offers (a workshop's end: "Download my folder"). */
  link?: { label?: unknown; url?: unknown };
}

interface INoticesReply {
  notices?: unknown;
  poll_s?: unknown;
}

/**
 * GET or POST {baseUrl}naic/api/{path}, with the headers JupyterLab's own requests carry
 * (the server's token, the _xsrf cookie as X-XSRFToken) and no caching.
 */
function request(
  settings: ServerConnection.ISettings,
  path: string,
  method: 'GET' | 'POST'
): Promise<Response> {
  return ServerConnection.makeRequest(
    URLExt.join(settings.baseUrl, 'naic/api', path),
    {
      method,
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store'
    },
    settings
  );
}

/**
 * The notices already shown in this tab: sessionStorage is per tab and survives reloads;
 * it can also be unavailable.
 */
function loadShown(): Set<string> {
  try {
    const stored = JSON.parse(window.sessionStorage.getItem(SHOWN_KEY) || '[]');
    return new Set(Array.isArray(stored) ? stored.map(String) : []);
  } catch (err) {
    return new Set();
  }
}

function saveShown(shown: Set<string>): void {
  try {
    // The most recent keys are enough: a notice's text changes with its deadline.
    window.sessionStorage.setItem(
      SHOWN_KEY,
      JSON.stringify(Array.from(shown).slice(-50))
    );
  } catch (err) {
    // Without storage a reload may show a notice again, which is better than none.
  }
}

function isNotice(value: unknown): value is INotice {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as INotice).text === 'string'
  );
}

function noticeType(level: unknown): Notification.TypeOptions {
  return TYPES.includes(level as Notification.TypeOptions)
    ? (level as Notification.TypeOptions)
    : 'warning';
}

function activate(app: JupyterFrontEnd): void {
  const settings = app.serviceManager.serverSettings;
  const shown = loadShown();
  const live = new Map<string, string>(); // notice key -> notification id, in this page
  let timer: ReturnType<typeof setTimeout> | undefined;
  let polling = false;
  let again = false; // a poll was asked for while one was running

  app.commands.addCommand(EXTEND, {
    label: 'Ask for more time',
    caption: 'Ask the hub to extend this session within its policy',
    execute: async () => {
      let ok = false;
      let message =
        'The hub could not be reached; please try again in a minute.';
      try {
        const response = await request(settings, 'extend', 'POST');
        ok = response.ok;
        const body = await response.json().catch(() => ({}));
        if (body && typeof body.message === 'string' && body.message) {
          message = body.message;
        } else if (!ok) {
          message = `The request for more time failed (HTTP ${response.status}).`;
        }
      } catch (err) {
        ok = false;
      }
      Notification.emit(message, ok ? 'success' : 'error', {
        autoClose: ok ? 10000 : false
      });
      if (ok) {
        schedule(0); // the old deadline's notice is now stale: let the server say so
      }
    }
  });

  function show(notices: unknown[]): void {
    const current = new Set<string>();
    for (const notice of notices) {
      if (!isNotice(notice)) {
        continue;
      }
      const key = `${notice.id}\n${notice.text}`;
      current.add(key);
      if (shown.has(key)) {
        continue;
      }
      const actions: Notification.IAction[] = notice.can_extend
        ? [
            {
              label: 'Ask for more time',
              callback: () => {
                void app.commands.execute(EXTEND);
              },
              displayType: 'accent'
            }
          ]
        : [];
      const link = notice.link;
      if (link && typeof link.label === 'string' && typeof link.url === 'string') {
        const url = link.url;
        actions.push({
          label: link.label,
          callback: () => {
            window.open(url, '_blank', 'noopener');
          },
          displayType: 'link'
        });
      }
      const id = Notification.emit(notice.text, noticeType(notice.level), {
        autoClose: false,
        actions
      });
      shown.add(key);
      saveShown(shown);
      live.set(key, id);
    }
    // A notice the server no longer gives (extended, GPU used again) is withdrawn.
    for (const [key, id] of live) {
      if (!current.has(key)) {
        live.delete(key);
        Notification.dismiss(id);
      }
    }
  }

  async function poll(): Promise<void> {
    let seconds = DEFAULT_POLL_S;
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    again = false;
    try {
      const response = await request(settings, 'notices', 'GET');
      if (response.ok) {
        const body: INoticesReply = await response.json();
        const asked = Number(body.poll_s);
        seconds = asked > 0 ? Math.max(MIN_POLL_S, asked) : DEFAULT_POLL_S;
        show(Array.isArray(body.notices) ? body.notices : []);
      }
    } catch (err) {
      // An older server without the endpoint, or the network: quiet, and ask again later.
    } finally {
      polling = false;
    }
    schedule(again ? 0 : seconds * 1000);
  }

  function schedule(ms: number): void {
    clearTimeout(timer);
    timer = setTimeout(() => void poll(), ms);
  }

  // After restore, so that the notification plugin shows what is emitted as toasts.
  void app.restored.then(poll, poll);
}

/**
 * The naic-hub-notices plugin.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: `${NAME}:plugin`,
  description:
    "Shows the session's notices (time limit, idle culler) as notifications.",
  autoStart: true,
  activate
};

export default plugin;
