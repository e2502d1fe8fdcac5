// common.js: what the sale page and the index share: the API client, the
// server clock, the sign-in token, the page's language, and the human
// messages for error codes. Plain script, no build step; it defines
// window.Seckill. Every sentence comes from text.js (the server makes it
// from http/page/text.json), in the language the server chose for the page.
(function () {
  'use strict';

  // ---- Language --------------------------------------------------------------
  // The server picks the language from Accept-Language (or the switch's
  // cookie) and writes it on <html lang>; the sentences follow it.
  var LANG = document.documentElement.lang === 'zh-CN' ? 'zh-CN' : 'en';
  var TEXT = window.SeckillText || {};

  // t is the sentence key in the page's language with {name} placeholders
  // filled from params; a sentence with plural forms picks one by params.n.
  function t(key, params) {
    var v = (TEXT[LANG] || {})[key];
    if (v === undefined) v = (TEXT.en || {})[key];
    if (v === undefined) return key;
    if (typeof v === 'object') v = params && params.n === 1 ? v.one : v.other;
    return v.replace(/\{(\w+)\}/g, function (m, k) {
      return params && params[k] !== undefined ? String(params[k]) : m;
    });
  }

  // The switch reloads the page in the other language: the server renders
  // the shell, so a cookie tells it the shopper's choice over the browser's.
  // A reload keeps the sign-in and the order (sessionStorage).
  function wireSwitch() {
    var b = document.getElementById('lang-switch');
    if (!b) return;
    b.addEventListener('click', function () {
      var lang = b.getAttribute('data-lang') === 'zh-CN' ? 'zh-CN' : 'en';
      document.cookie = 'seckill_lang=' + lang + '; Path=/; Max-Age=31536000; SameSite=Lax';
      location.reload();
    });
  }
  wireSwitch();

  // ---- The server clock ----------------------------------------------------
  // Countdowns and the buy button follow the SERVER's clock, never the
  // device's: a phone set an hour ahead must not unlock the button early.
  // Each API answer carries server_time; we pair it with performance.now()
  // (monotonic, unaffected by the device's wall clock or by someone changing
  // it) at the midpoint of the request, the way NTP does, and keep the sample
  // with the shortest round trip, whose midpoint is the tightest estimate.
  var clock = { server: NaN, perf: 0, rtt: Infinity, at: -Infinity };

  function parseTime(s) {
    if (typeof s !== 'string' || s === '') return NaN;
    // Go writes up to nine fractional digits; Date.parse is only required
    // to read three.
    return Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));
  }

  function sample(serverMS, t0, t1, extraUncertainty) {
    if (!Number.isFinite(serverMS)) return;
    var rtt = (t1 - t0) + (extraUncertainty || 0);
    // A fresh sample every minute even if its round trip is longer, so the
    // small drift between the two clocks cannot add up over a long wait.
    if (rtt <= clock.rtt || t1 - clock.at > 60000) {
      clock.server = serverMS;
      clock.perf = t0 + (t1 - t0) / 2;
      clock.rtt = rtt;
      clock.at = t1;
    }
  }

  // now is the server's time in epoch milliseconds, NaN before the first answer.
  function now() {
    return Number.isFinite(clock.server) ? clock.server + (performance.now() - clock.perf) : NaN;
  }

  // ---- Sign-in -------------------------------------------------------------
  // The token lives in sessionStorage: it is gone when the tab closes, and it
  // is not sent anywhere but in the Authorization header of our own API.
  var TOKEN_KEY = 'seckill.token';

  function store() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function load(key) { var s = store(); try { return s ? s.getItem(key) : null; } catch (e) { return null; } }
  function save(key, value) {
    var s = store();
    try { if (s) { if (value === null) s.removeItem(key); else s.setItem(key, value); } } catch (e) { /* private mode: keep going without */ }
  }

  // claims reads a JWT's payload. It does not verify the signature (only the
  // server can); it is for showing who is signed in and noticing expiry.
  function claims(token) {
    if (typeof token !== 'string') return null;
    var parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      var b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      var c = JSON.parse(atob(b64));
      return c && typeof c.sub === 'string' ? c : null;
    } catch (e) {
      return null;
    }
  }

  function token() {
    var t = load(TOKEN_KEY);
    var c = claims(t);
    if (!c) return null;
    var n = now();
    // Judged by the server's clock when we have it (5 s of leeway, as the server).
    var nowMS = Number.isFinite(n) ? n : Date.now();
    if (typeof c.exp === 'number' && c.exp * 1000 + 5000 < nowMS) {
      save(TOKEN_KEY, null);
      return null;
    }
    return t;
  }
  function setToken(t) { save(TOKEN_KEY, t); }
  function user() { var c = claims(token()); return c ? c.sub : null; }

  // ---- The API ---------------------------------------------------------------
  var ID = /^[A-Za-z0-9_-]{1,64}$/;

  function retryAfterMS(header) {
    if (!header) return 0;
    if (/^\s*\d+\s*$/.test(header)) return parseInt(header, 10) * 1000;
    var at = Date.parse(header);
    var n = now();
    return Number.isFinite(at) && Number.isFinite(n) ? Math.max(0, at - n) : 0;
  }

  // api calls the REST API and never throws: it resolves to
  // {ok, status, data, code, message, retryAfterMS}. status 0 and code
  // "network" mean no answer arrived.
  function api(method, path, opts) {
    opts = opts || {};
    var headers = { 'Accept': 'application/json' };
    var extra = opts.headers || {};
    Object.keys(extra).forEach(function (k) { headers[k] = extra[k]; });
    var body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    if (opts.token) headers['Authorization'] = 'Bearer ' + opts.token;
    var t0 = performance.now();
    return fetch(path, { method: method, headers: headers, body: body, cache: 'no-store', credentials: 'omit' })
      .then(function (resp) {
        var t1 = performance.now();
        return resp.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (data && typeof data.server_time === 'string') {
            sample(parseTime(data.server_time), t0, t1, 0);
          } else if (!Number.isFinite(clock.server)) {
            // Until an answer with server_time comes, the Date header will
            // do; it has whole seconds, so it counts as a second less exact.
            var d = Date.parse(resp.headers.get('Date') || '');
            if (Number.isFinite(d)) sample(d + 500, t0, t1, 1000);
          }
          var res = { ok: resp.ok, status: resp.status, data: data, retryAfterMS: retryAfterMS(resp.headers.get('Retry-After')) };
          if (!resp.ok) {
            var e = (data && data.error) || {};
            res.code = e.code || ('http_' + resp.status);
            res.message = e.message || resp.statusText || '';
          }
          return res;
        });
      }, function () {
        return { ok: false, status: 0, code: 'network', message: '', data: null, retryAfterMS: 0 };
      });
  }

  // uuid makes an Idempotency-Key. crypto.randomUUID exists only in secure
  // contexts (https, localhost); a phone on the LAN opening http://10.0.0.5
  // is not one, so fall back to getRandomValues, which exists everywhere.
  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // ---- Messages ------------------------------------------------------------
  // One sentence a shopper can act on, for every error code the API returns
  // (text.json's err_CODE), in the page's language.
  function message(res) {
    var code = res.code || '';
    if (code === 'invalid_request' || code === 'malformed_json') return t('err_' + code, { detail: res.message });
    if (code === 'rate_limited') {
      var s = Math.max(1, Math.ceil((res.retryAfterMS || 1000) / 1000));
      return t('try_again_in', { m: t('err_rate_limited'), n: s });
    }
    if (/^[a-z_]+$/.test(code) && ((TEXT.en || {})['err_' + code] !== undefined)) return t('err_' + code);
    if (res.status >= 500) return t('err_internal');
    return t('err_other', { code: code || res.status });
  }

  // ---- Formatting ----------------------------------------------------------
  function pad(n) { return n < 10 ? '0' + n : String(n); }

  // duration formats milliseconds as a countdown: 4:05, 1:02:03, 2 d 03:04:05.
  function duration(ms) {
    if (!Number.isFinite(ms)) return '--:--';
    var s = Math.max(0, Math.ceil(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    s = s % 60;
    if (d > 0) return t('days_short', { d: d, hms: pad(h) + ':' + pad(m) + ':' + pad(s) });
    if (h > 0) return h + ':' + pad(m) + ':' + pad(s);
    return m + ':' + pad(s);
  }

  // spoken is a duration as words, for screen readers and help text.
  function spoken(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    if (s < 60) return t('seconds', { n: s });
    var m = Math.round(s / 60);
    if (m < 60) return t('minutes', { n: m });
    var h = Math.round(m / 60);
    if (h < 48) return t('hours', { n: h });
    return t('days', { n: Math.round(h / 24) });
  }

  // price formats minor units in the sale's currency (an ISO 4217 code) in
  // the page's language; without a known currency, as a plain amount.
  var formats = {};
  function price(cents, currency) {
    if (typeof cents !== 'number') return '–';
    var key = /^[A-Z]{3}$/.test(currency || '') ? currency : '';
    if (!(key in formats)) {
      try {
        formats[key] = new Intl.NumberFormat(LANG, key ? { style: 'currency', currency: key }
          : { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      } catch (e) {
        formats[key] = null;
      }
    }
    return formats[key] ? formats[key].format(cents / 100) : (cents / 100).toFixed(2) + (key ? ' ' + key : '');
  }

  // at formats an instant in the shopper's time zone and the page's language. It formats a time the
  // server gave; it does not read the device's clock.
  function at(ms) {
    if (!Number.isFinite(ms)) return '';
    try {
      return new Date(ms).toLocaleString(LANG, { dateStyle: 'medium', timeStyle: 'medium' });
    } catch (e) {
      return new Date(ms).toString();
    }
  }

  function text(el, s) {
    if (el && el.textContent !== s) el.textContent = s;
  }

  window.Seckill = {
    api: api, now: now, parseTime: parseTime, uuid: uuid,
    token: token, setToken: setToken, user: user, claims: claims,
    load: load, save: save, validID: function (id) { return ID.test(id); },
    lang: LANG, t: t, message: message, duration: duration, spoken: spoken, price: price, at: at, text: text
  };
})();
