// sale.js: the sale page. It reads the sale id from the address, shows the
// sale with its stock (refreshed every ~2 s) and a countdown on the server's
// clock, and walks a shopper through buy → reserved → pay → paid.
(function () {
  'use strict';
  var S = window.Seckill;
  var $ = function (id) { return document.getElementById(id); };
  var enc = encodeURIComponent;

  var SALE_EVERY = 2000;    // stock refresh while the tab is visible
  var HIDDEN_EVERY = 15000; // and while it is not: nobody is looking
  var ORDER_EVERY = 3000;   // a reserved order, to notice expiry or payment elsewhere
  var CONFIRM_EVERY = 1000; // an order that the API has not shown as reserved yet

  var saleID = (function () {
    var m = /^\/sale\/([^/]+)\/?$/.exec(location.pathname);
    if (!m) return '';
    try { return decodeURIComponent(m[1]); } catch (e) { return ''; }
  })();

  var st = {
    sale: null,       // the last GET /v1/sales/{id} answer
    saleErr: null,    // the last failed one, if the latest failed
    phase: 'loading', // loading, upcoming, active, sold_out, ended, missing
    buying: false,
    waitUntil: NaN,   // server time until which Retry-After holds the button
    orderID: '',
    placed: null,     // the purchase answer (order_id, pay_by)
    order: null,      // the last GET /v1/orders/{id} answer
    orderTimer: 0,
    notFound: 0,
    paying: false,
    focusPay: false,
    pass: null,       // the purchase pass of a sale that requires one
    draw: null,       // the shopper's entry in a draw-mode sale: {slice, status, draw_at}
    drawTimer: 0
  };

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function jitter(ms) { return ms * (0.9 + Math.random() * 0.2); } // spread many shoppers' polls apart

  function announce(msg) {
    var el = $('announce');
    // Cleared first so that the same sentence twice is announced twice.
    el.textContent = '';
    setTimeout(function () { el.textContent = msg; }, 50);
  }

  function showError(id, msg, info) {
    var el = $(id);
    el.classList.toggle('info', !!info);
    S.text(el, msg || '');
  }

  // ---- The sale ------------------------------------------------------------

  function phaseOf(sale, now) {
    if (!sale || !Number.isFinite(now)) return 'loading';
    if (sale.state === 'ended') return 'ended';
    var starts = S.parseTime(sale.starts_at), ends = S.parseTime(sale.ends_at);
    if (now >= ends) return 'ended';
    // Our own estimate of the server's clock decides the moment of the start
    // between two refreshes, so the button unlocks on time, not up to 2 s late.
    if (now < starts) return 'upcoming';
    if (sale.remaining <= 0) return 'sold_out';
    return 'active';
  }

  function refreshSale() {
    return S.api('GET', '/v1/sales/' + enc(saleID)).then(function (res) {
      if (res.ok && res.data) {
        st.sale = res.data;
        st.saleErr = null;
        if (st.sale.release_mode === 'draw' && S.user() && !st.draw) {
          // A reload: the shopper may have an entry waiting for its draw.
          st.draw = { status: 'checking' };
          pollDraw();
        }
      } else {
        st.saleErr = res;
      }
      render();
      return res;
    });
  }

  function saleLoop() {
    refreshSale().then(function (res) {
      var next = document.hidden ? HIDDEN_EVERY : SALE_EVERY;
      if (res.code === 'sale_not_found') next = 10000;
      if (res.retryAfterMS) next = Math.max(next, res.retryAfterMS);
      setTimeout(saleLoop, jitter(next));
    });
  }

  function orderOpen() {
    // An order that may still need paying keeps the buy button for itself.
    if (!st.orderID) return false;
    return !st.order || st.order.status === 'reserved';
  }

  function render() {
    var now = S.now();
    var sale = st.sale;
    var phase = phaseOf(sale, now);
    if (!sale && st.saleErr && st.saleErr.code === 'sale_not_found') phase = 'missing';
    var prev = st.phase;
    st.phase = phase;
    $('sale').setAttribute('data-phase', phase);

    if (phase === 'missing') {
      S.text($('sale-name'), S.t('sale_not_found'));
      document.title = S.t('title_missing');
      S.text($('countdown-label'), '');
      S.text($('countdown'), '');
      S.text($('buy-help'), S.message(st.saleErr));
    } else if (sale) {
      S.text($('sale-name'), sale.name);
      document.title = S.t('title_sale_named', { name: sale.name });
      S.text($('price'), S.price(sale.price_cents, sale.currency));
      S.text($('remaining'), S.t('remaining_of', { remaining: sale.remaining, stock: sale.stock }));
      S.text($('limit'), String(sale.per_user_limit));
      var pct = sale.stock > 0 ? Math.max(0, Math.min(100, 100 * sale.remaining / sale.stock)) : 0;
      $('stockbar-fill').style.width = pct + '%';
      var starts = S.parseTime(sale.starts_at), ends = S.parseTime(sale.ends_at);
      if (phase === 'upcoming') {
        S.text($('countdown-label'), S.t('starts_in'));
        S.text($('countdown'), S.duration(starts - now));
        S.text($('when'), S.t('opens_at', { at: S.at(starts) }));
      } else if (phase === 'active' || phase === 'sold_out') {
        S.text($('countdown-label'), S.t('ends_in'));
        S.text($('countdown'), S.duration(ends - now));
        S.text($('when'), S.t('closes_at', { at: S.at(ends) }));
      } else {
        S.text($('countdown-label'), S.t('sale_ended'));
        S.text($('countdown'), '');
        S.text($('when'), sale.end_reason === 'ended_early' ? S.t('ended_early') : S.t('closed_at', { at: S.at(ends) }));
      }
      S.text($('buy-help'), helpFor(phase, sale));
    } else if (st.saleErr) {
      S.text($('buy-help'), S.message(st.saleErr));
    }
    renderBuy(phase, now);
    renderOrder(now);

    if (prev !== phase && prev !== 'loading') {
      if (phase === 'active') announce(S.t('announce_open'));
      else if (phase === 'sold_out') announce(S.t('announce_sold_out'));
      else if (phase === 'ended') announce(S.t('announce_ended'));
    }
  }

  function helpFor(phase, sale) {
    if ((phase === 'active' || phase === 'sold_out') && orderOpen()) return S.t('help_reserved');
    switch (phase) {
      case 'upcoming': return S.t('help_upcoming');
      case 'active':
        if (!S.token()) return S.t('help_sign_in');
        if (sale.release_mode === 'draw') return S.t('help_draw', { pay: S.spoken(sale.pay_within_s * 1000) });
        return S.t('help_active', { pay: S.spoken(sale.pay_within_s * 1000) });
      case 'sold_out':
        return S.t('help_sold_out', { pay: S.spoken(sale.pay_within_s * 1000) });
      case 'ended': return S.t('help_ended');
    }
    return '';
  }

  function renderBuy(phase, now) {
    var b = $('buy');
    var waiting = Number.isFinite(st.waitUntil) && now < st.waitUntil;
    var label = S.t('buy_now');
    if ((phase === 'active' || phase === 'sold_out') && orderOpen()) label = S.t('btn_reserved');
    else if (phase === 'sold_out') label = S.t('btn_sold_out');
    else if (phase === 'ended') label = S.t('btn_ended');
    else if (phase === 'missing') label = S.t('btn_missing');
    else if (st.buying) label = S.t('btn_buying');
    else if (phase === 'active' && st.draw && st.draw.status === 'entered') label = S.t('btn_entered');
    else if (phase === 'active' && waiting) label = S.t('btn_try_again', { time: S.duration(st.waitUntil - now) });
    S.text(b, label);
    var entered = !!(st.draw && st.draw.status === 'entered');
    var enabled = phase === 'active' && !st.buying && !waiting && !orderOpen() && !entered;
    if (b.disabled === enabled) b.disabled = !enabled;
  }

  // ---- Buying ----------------------------------------------------------------

  // pass returns the purchase pass of a sale that requires one
  // (require_token): a short-lived signed token from GET /v1/sales/{id}/token,
  // kept while it is valid. It resolves to null when the sale needs none, or
  // to a failed API answer.
  function pass(token, fresh) {
    if (!st.sale || !st.sale.require_token) return Promise.resolve(null);
    var p = st.pass;
    if (!fresh && p && p.user === S.user() && S.parseTime(p.expires_at) - S.now() > 2000) return Promise.resolve(p);
    return S.api('GET', '/v1/sales/' + enc(saleID) + '/token', { token: token }).then(function (res) {
      if (!res.ok || !res.data || !res.data.token) return res;
      st.pass = { token: res.data.token, header: res.data.header || 'X-Purchase-Token', expires_at: res.data.expires_at, user: S.user() };
      return st.pass;
    });
  }

  function purchase(token, key, tries, renewed) {
    return pass(token, renewed).then(function (p) {
      if (p && p.ok === false) return p; // could not get a pass: say why
      var headers = { 'Idempotency-Key': key };
      if (p) headers[p.header] = p.token;
      return S.api('POST', '/v1/sales/' + enc(saleID) + '/purchase', {
        token: token, body: { quantity: 1 }, headers: headers
      }).then(function (res) {
        // No answer, or the server gave up half-way: the purchase may or may
        // not have happened. Asking again with the same key is safe, because
        // the gate answers a known key with the order it already made.
        var unknown = res.status === 0 || res.status === 502 || res.status === 503 || res.status === 504;
        if (unknown && tries < 3) {
          return sleep(400 * Math.pow(2, tries)).then(function () { return purchase(token, key, tries + 1, false); });
        }
        // Our pass expired or the sale began to require one: get a new
        // pass once. The rejection reserved nothing, so this is no double buy.
        if (res.code === 'token_required' && !renewed) {
          st.sale.require_token = true;
          return purchase(token, key, tries, true);
        }
        return res;
      });
    });
  }

  function buy() {
    var token = S.token();
    if (!token) {
      showError('buy-error', S.t('sign_in_first'), true);
      $('user-id').focus();
      return;
    }
    if (st.phase !== 'active' || st.buying) return;
    st.buying = true;
    showError('buy-error', '');
    render();
    // A fresh key per press: each press is a new attempt, and retries of
    // that one attempt (above) reuse it.
    purchase(token, S.uuid(), 0, false).then(function (res) {
      st.buying = false;
      if (res.ok && res.data && res.data.status === 'entered') {
        // A draw-mode sale: the press entered this round's draw.
        enteredDraw(res.data);
      } else if (res.ok && res.data && res.data.order_id) {
        announce(S.t('order_pending'));
        setOrder(res.data.order_id, res.data);
        refreshSale(); // the stock just changed; show it now, not in 2 s
      } else {
        purchaseFailed(res);
      }
      render();
    });
  }

  function purchaseFailed(res) {
    var msg = S.message(res);
    switch (res.code) {
      case 'unauthenticated':
        signOut(msg);
        return;
      case 'rate_limited':
        st.waitUntil = S.now() + (res.retryAfterMS || 1000);
        break;
      case 'not_yet_released':
        // Stock is released in steps: try again when the server says.
        if (res.retryAfterMS) st.waitUntil = S.now() + res.retryAfterMS;
        break;
      case 'limit_reached':
        if (st.sale) msg += (S.lang === 'en' ? ' ' : '') + S.t('limit_is', { n: st.sale.per_user_limit });
        findMyOrder();
        break;
      case 'sold_out':
      case 'insufficient_stock':
      case 'not_started':
      case 'ended':
        // The page's picture of the sale was behind: catch up now.
        refreshSale();
        break;
    }
    showError('buy-error', msg, res.code === 'not_started' || res.code === 'rate_limited');
  }

  // findMyOrder shows the shopper's open order in this sale after
  // limit_reached: they bought already, perhaps in another tab.
  function findMyOrder() {
    var token = S.token();
    if (!token) return;
    S.api('GET', '/v1/users/me/orders?limit=50', { token: token }).then(function (res) {
      if (!res.ok || !res.data || !Array.isArray(res.data.orders) || st.orderID) return;
      for (var i = 0; i < res.data.orders.length; i++) {
        var o = res.data.orders[i];
        if (o.sale_id === saleID && o.status !== 'expired') {
          setOrder(o.order_id, null);
          return;
        }
      }
    });
  }

  // ---- The draw --------------------------------------------------------------
  // In a sale with release_mode "draw" a press enters the current round's
  // draw (202 entered); the page asks for the result once the round is
  // drawn and shows the order of a winner.

  function enteredDraw(entry) {
    st.draw = { slice: entry.slice, status: 'entered', draw_at: entry.draw_at };
    announce(S.t('draw_entered'));
    showError('buy-error', S.t('draw_entered_at', { time: S.at(S.parseTime(entry.draw_at)) }), true);
    clearTimeout(st.drawTimer);
    st.drawTimer = setTimeout(pollDraw, Math.max(300, S.parseTime(entry.draw_at) - S.now() + 200));
  }

  function pollDraw() {
    clearTimeout(st.drawTimer);
    var token = S.token();
    if (!token) return;
    S.api('GET', '/v1/sales/' + enc(saleID) + '/draw', { token: token }).then(function (res) {
      if (!res.ok || !res.data) {
        if (res.code !== 'not_entered' && res.code !== 'no_draw') st.drawTimer = setTimeout(pollDraw, jitter(2000));
        return;
      }
      var d = res.data;
      st.draw = { slice: d.slice, status: d.status, draw_at: d.draw_at };
      switch (d.status) {
        case 'entered':
        case 'won': // drawn, the order being placed
          st.drawTimer = setTimeout(pollDraw, jitter(1000));
          break;
        case 'ordered':
          announce(S.t('draw_won'));
          showError('buy-error', S.t('draw_won'), true);
          if (d.order_id && d.order_id !== st.orderID) setOrder(d.order_id, null);
          break;
        case 'lost':
          showError('buy-error', S.t('draw_lost'), true);
          announce(S.t('draw_lost'));
          break;
        case 'refused':
          showError('buy-error', S.t('draw_refused', { reason: d.reason || '' }));
          break;
      }
      render();
    });
  }

  // ---- The order -------------------------------------------------------------

  function orderKey() { return 'seckill.order.' + saleID + '.' + (S.user() || ''); }

  function setOrder(id, placed) {
    clearTimeout(st.orderTimer);
    st.orderID = id;
    st.placed = placed;
    st.order = null;
    st.notFound = 0;
    st.focusPay = true;
    S.save(orderKey(), id);
    showError('order-error', '');
    render();
    pollOrder();
  }

  function forgetOrder() {
    clearTimeout(st.orderTimer);
    st.orderID = '';
    st.placed = null;
    st.order = null;
    render();
  }

  function updateOrder(o) {
    var before = st.order ? st.order.status : '';
    st.order = o;
    if (o.status !== before) {
      if (o.status === 'reserved') announce(S.t('order_reserved_pay', { time: S.spoken(S.parseTime(o.pay_by) - S.now()) }));
      else if (o.status === 'paid') announce(S.t('order_paid_short'));
      else if (o.status === 'expired') announce(S.t('order_expired_short'));
    }
    render();
    if (o.status === 'reserved' && st.focusPay) {
      // The next thing to do is pay: take keyboard and screen-reader users there.
      st.focusPay = false;
      $('pay').focus();
    }
  }

  function pollOrder() {
    clearTimeout(st.orderTimer);
    var id = st.orderID, token = S.token();
    if (!id || !token) return;
    S.api('GET', '/v1/orders/' + enc(id), { token: token }).then(function (res) {
      if (id !== st.orderID) return; // signed out or another order meanwhile
      var next = st.order && st.order.status === 'reserved' ? ORDER_EVERY : CONFIRM_EVERY;
      if (res.ok && res.data) {
        st.notFound = 0;
        showError('order-error', '');
        updateOrder(res.data);
        if (res.data.status !== 'reserved') return; // paid and expired are final
        next = ORDER_EVERY;
      } else if (res.code === 'unauthenticated') {
        signOut(S.message(res));
        return;
      } else if (res.code === 'order_not_found') {
        // The gate answers for fresh orders, so this means the order is not
        // the signed-in user's, or it is gone. Give it a few tries anyway.
        if (++st.notFound > 5) {
          S.save(orderKey(), null);
          forgetOrder();
          showError('buy-error', S.message(res));
          return;
        }
      } else {
        showError('order-error', S.message(res), true);
      }
      if (res.retryAfterMS) next = Math.max(next, res.retryAfterMS);
      st.orderTimer = setTimeout(pollOrder, jitter(next));
    });
  }

  function renderOrder(now) {
    var sec = $('order');
    if (!st.orderID) {
      sec.hidden = true;
      return;
    }
    sec.hidden = false;
    var o = st.order;
    var status = o ? o.status : 'pending';
    if (sec.getAttribute('data-status') !== status) sec.setAttribute('data-status', status);
    var payBy = S.parseTime(o ? o.pay_by : (st.placed && st.placed.pay_by));
    var open = status === 'reserved' && Number.isFinite(now) && now < payBy;
    var msg;
    switch (status) {
      case 'pending': msg = S.t('order_pending'); break;
      case 'reserved': msg = open ? S.t('order_reserved') : S.t('order_time_up'); break;
      case 'paid': msg = S.t('order_paid'); break;
      case 'expired': msg = S.t('order_expired'); break;
      default: msg = S.t('order_status', { status: status });
    }
    S.text($('order-status'), msg);
    S.text($('order-id'), st.orderID);
    var currency = (o && o.currency) || (st.sale && st.sale.currency);
    S.text($('order-amount'), o ? S.price(o.amount_cents, currency) : (st.sale ? S.price(st.sale.price_cents, currency) : '–'));
    $('pay-by-row').hidden = !(status === 'reserved' || status === 'pending');
    S.text($('pay-by'), Number.isFinite(payBy) ? S.duration(payBy - now) : '–');
    var pay = $('pay');
    pay.hidden = !open;
    pay.disabled = st.paying;
    S.text(pay, st.paying ? S.t('paying') : S.t('pay_amount', { amount: S.price(o ? o.amount_cents : 0, currency) }));
  }

  // ---- Paying ----------------------------------------------------------------

  function payOnce(token, id, ref, tries) {
    return S.api('POST', '/v1/orders/' + enc(id) + '/pay', { token: token, body: { payment_ref: ref } }).then(function (res) {
      var unknown = res.status === 0 || res.status === 502 || res.status === 503 || res.status === 504;
      if (unknown && tries < 3) {
        return sleep(400 * Math.pow(2, tries)).then(function () { return payOnce(token, id, ref, tries + 1); });
      }
      return res;
    });
  }

  function pay() {
    var token = S.token(), id = st.orderID;
    if (!token || !id || st.paying) return;
    // The same payment reference on every retry of this order: paying again
    // with it is answered like the first time, never charged twice.
    var refKey = 'seckill.payref.' + id;
    var ref = S.load(refKey) || ('demo-' + S.uuid());
    S.save(refKey, ref);
    st.paying = true;
    showError('order-error', '');
    render();
    payOnce(token, id, ref, 0).then(function (res) {
      st.paying = false;
      if (id !== st.orderID) return;
      if (res.ok) {
        var o = Object.assign({}, st.order, { status: 'paid', payment_ref: res.data.payment_ref, paid_at: res.data.paid_at });
        clearTimeout(st.orderTimer);
        updateOrder(o);
        $('order-title').focus();
        return;
      }
      if (res.code === 'unauthenticated') {
        signOut(S.message(res));
        return;
      }
      showError('order-error', S.message(res));
      if (res.code === 'expired') {
        clearTimeout(st.orderTimer);
        updateOrder(Object.assign({}, st.order, { status: 'expired' }));
      } else if (res.code === 'already_paid') {
        pollOrder(); // show the order as the server has it
      }
      render();
    });
  }

  // ---- Signing in ------------------------------------------------------------

  function signedIn() {
    var user = S.user();
    $('who').hidden = !user;
    $('account').hidden = !!user;
    S.text($('who-name'), user || '');
    showError('sign-in-error', '');
    if (user && !st.orderID) {
      var id = S.load(orderKey());
      if (id) setOrder(id, null); // a reload does not lose the order
    }
    render();
  }

  function signOut(msg) {
    S.setToken(null);
    clearTimeout(st.orderTimer);
    st.orderID = '';
    st.order = null;
    st.placed = null;
    signedIn();
    if (msg) showError('sign-in-error', msg);
    $('user-id').focus();
  }

  function afterSignIn(user) {
    signedIn();
    announce(S.t('signed_in', { user: user }));
    var b = $('buy');
    if (!b.disabled) b.focus(); else $('sale-name').focus();
  }

  $('sign-in-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = $('user-id');
    var id = input.value.trim();
    if (!S.validID(id)) {
      input.setAttribute('aria-invalid', 'true');
      showError('sign-in-error', S.t('bad_user_id'));
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    var btn = $('sign-in');
    btn.disabled = true;
    S.api('POST', '/v1/dev/token', { body: { user_id: id } }).then(function (res) {
      btn.disabled = false;
      if (res.ok && res.data && res.data.token) {
        S.setToken(res.data.token);
        afterSignIn(id);
      } else if (res.status === 404 || res.status === 405) {
        showError('sign-in-error', S.t('dev_sign_in_off'));
        $('token-details').open = true;
        $('token-input').focus();
      } else {
        showError('sign-in-error', S.message(res));
      }
    });
  });

  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token-input').value.trim().replace(/^Bearer\s+/i, '');
    var c = S.claims(t);
    if (!c) {
      showError('sign-in-error', S.t('bad_token'));
      $('token-input').focus();
      return;
    }
    S.setToken(t);
    if (!S.token()) {
      showError('sign-in-error', S.t('token_expired'));
      return;
    }
    $('token-input').value = '';
    afterSignIn(c.sub);
  });

  $('sign-out').addEventListener('click', function () { signOut(''); });
  $('buy').addEventListener('click', buy);
  $('pay').addEventListener('click', pay);

  // Headings that scripts move focus to.
  $('sale-name').tabIndex = -1;
  $('order-title').tabIndex = -1;

  if (!S.validID(saleID)) {
    st.phase = 'missing';
    S.text($('sale-name'), S.t('sale_not_found'));
    S.text($('buy-help'), S.t('help_missing'));
    S.text($('buy'), S.t('btn_missing'));
    $('account').hidden = true;
    return;
  }
  signedIn();
  saleLoop();
  // The countdowns move on their own between refreshes.
  setInterval(render, 250);
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) refreshSale();
  });
})();
