/*
 * naic-hub-notices: JupyterLab toasts for a session's notices ("30 minutes left", the
 * culler's warning), polled from the session server's GET {baseUrl}naic/api/notices.
 *
 * Hand-written so that naic-hub needs no Node build. It is what `jupyter labextension
 * build` would emit, cut down to the module-federation container contract that
 * JupyterLab 4's bootstrap uses (staging/bootstrap.js and staging/index.js):
 *   - package.json's jupyterlab._build.load names this file; the page loads it as a script
 *     and calls window._JUPYTERLAB[name].init(shareScope);
 *   - then get(jupyterlab._build.extension) must give (a promise of) a factory whose
 *     result is {__esModule: true, default: plugin or [plugins]}.
 * The plugin uses no shared modules (no @jupyterlab/* imports), so init has nothing to do
 * and the file keeps working across JupyterLab 4 releases: it only needs `app`.
 *
 * static/ is served with an immutable cache header, so the file name carries the first
 * 20 hex digits of this file's sha256: edit it, rename it, and update package.json
 * (tests/browser/test_lab_notices.py checks the two agree).
 */
(function () {
  'use strict';

  const NAME = 'naic-hub-notices';
  const NOTIFY = 'apputils:notify';
  const DISMISS = 'apputils:dismiss-notification';
  const EXTEND = 'naic:extend-session';
  const SHOWN_KEY = NAME + ':shown';
  const DEFAULT_POLL_S = 30;
  const MIN_POLL_S = 2;
  const TYPES = ['info', 'warning', 'error', 'success'];

  function cookie(name) {
    const match = document.cookie.match('\\b' + name + '=([^;]*)\\b');
    return match ? match[1] : undefined;
  }

  // The same headers JupyterLab's ServerConnection sends, without importing it.
  function request(settings, path, method) {
    const base = settings.baseUrl.endsWith('/') ? settings.baseUrl : settings.baseUrl + '/';
    const headers = { Accept: 'application/json' };
    if (settings.token) {
      headers.Authorization = 'token ' + settings.token;
    }
    const xsrf = cookie('_xsrf');
    if (xsrf !== undefined) {
      headers['X-XSRFToken'] = xsrf;
    }
    return fetch(base + 'naic/api/' + path, {
      method: method,
      headers: headers,
      credentials: 'same-origin',
      cache: 'no-store'
    });
  }

  // sessionStorage is per tab and survives reloads; it can also be unavailable.
  function loadShown() {
    try {
      return new Set(JSON.parse(window.sessionStorage.getItem(SHOWN_KEY) || '[]'));
    } catch (err) {
      return new Set();
    }
  }

  function saveShown(shown) {
    try {
      // The most recent keys are enough: a notice's text changes with its deadline.
      window.sessionStorage.setItem(SHOWN_KEY, JSON.stringify(Array.from(shown).slice(-50)));
    } catch (err) {
      // Without storage a reload may show a notice again, which is better than none.
    }
  }

  function activate(app) {
    const settings = app.serviceManager.serverSettings;
    const shown = loadShown();
    const live = new Map(); // notice key -> notification id, shown in this page
    let timer = null;
    let polling = false;
    let again = false; // a poll was asked for while one was running

    app.commands.addCommand(EXTEND, {
      label: 'Ask for more time',
      caption: 'Ask the hub to extend this session within its policy',
      execute: async function () {
        let ok = false;
        let message = 'The hub could not be reached; please try again in a minute.';
        try {
          const response = await request(settings, 'extend', 'POST');
          ok = response.ok;
          const body = await response.json().catch(function () {
            return {};
          });
          if (body && typeof body.message === 'string' && body.message) {
            message = body.message;
          } else if (!ok) {
            message = 'The request for more time failed (HTTP ' + response.status + ').';
          }
        } catch (err) {
          ok = false;
        }
        await app.commands.execute(NOTIFY, {
          message: message,
          type: ok ? 'success' : 'error',
          options: { autoClose: ok ? 10000 : false }
        });
        if (ok) {
          schedule(0); // the old deadline's notice is now stale: let the server say so
        }
      }
    });

    async function show(notices) {
      const current = new Set();
      for (const notice of notices) {
        if (!notice || typeof notice.text !== 'string') {
          continue;
        }
        const key = notice.id + '\n' + notice.text;
        current.add(key);
        if (shown.has(key)) {
          continue;
        }
        const actions = notice.can_extend
          ? [{ label: 'Ask for more time', commandId: EXTEND, displayType: 'accent' }]
          : [];
        const id = await app.commands.execute(NOTIFY, {
          message: notice.text,
          type: TYPES.indexOf(notice.level) >= 0 ? notice.level : 'warning',
          options: { autoClose: false, actions: actions }
        });
        shown.add(key);
        saveShown(shown);
        live.set(key, id);
      }
      // A notice the server no longer gives (extended, GPU used again) is withdrawn.
      for (const [key, id] of live) {
        if (!current.has(key)) {
          live.delete(key);
          app.commands.execute(DISMISS, { id: id }).catch(function () {});
        }
      }
    }

    async function poll() {
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
          const body = await response.json();
          const asked = Number(body.poll_s);
          seconds = asked > 0 ? Math.max(MIN_POLL_S, asked) : DEFAULT_POLL_S;
          await show(Array.isArray(body.notices) ? body.notices : []);
        }
      } catch (err) {
        // An older server without the endpoint, or the network: quiet, and ask again later.
      } finally {
        polling = false;
      }
      schedule(again ? 0 : seconds * 1000);
    }

    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(poll, ms);
    }

    // After restore, so that the notification plugin's commands exist.
    app.restored.then(poll, poll);
  }

  const plugin = {
    id: NAME + ':plugin',
    description: "Shows the session's notices (time limit, idle culler) as notifications.",
    autoStart: true,
    activate: activate
  };

  const modules = {
    './extension': function () {
      return { __esModule: true, default: plugin };
    }
  };

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: function () {
      // No shared modules to offer or to take.
    },
    get: function (module) {
      const factory = modules[module];
      if (!factory) {
        return Promise.reject(new Error(NAME + ' has no module ' + module));
      }
      return Promise.resolve(factory);
    }
  };
})();
