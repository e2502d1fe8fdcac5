// index.js: the sale page's index: open a sale by id, or pick a recent one.
(function () {
  'use strict';
  var S = window.Seckill;
  var $ = function (id) { return document.getElementById(id); };

  $('open-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var id = $('sale-id').value.trim();
    if (!S.validID(id)) {
      $('sale-id').setAttribute('aria-invalid', 'true');
      S.text($('open-error'), S.t('bad_sale_id'));
      $('sale-id').focus();
      return;
    }
    location.assign('/sale/' + encodeURIComponent(id));
  });

  function phase(sale, now) {
    var starts = S.parseTime(sale.starts_at), ends = S.parseTime(sale.ends_at);
    if (sale.ended || now >= ends) return S.t('list_ended');
    if (now < starts) return S.t('list_starts_in', { time: S.spoken(starts - now) });
    return S.t('list_on_now');
  }

  // The list is a nicety: when the server does not offer it, the form is enough.
  S.api('GET', '/v1/sales?limit=20').then(function (res) {
    if (!res.ok || !res.data || !Array.isArray(res.data.sales)) return;
    var now = S.now();
    var list = $('sales');
    res.data.sales.forEach(function (sale) {
      var li = document.createElement('li');
      var a = document.createElement('a');
      a.href = '/sale/' + encodeURIComponent(sale.id);
      var name = document.createElement('span');
      name.className = 'name';
      name.textContent = sale.name;
      var meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = S.price(sale.price_cents, sale.currency) + ' · ' + phase(sale, now);
      a.appendChild(name);
      a.appendChild(meta);
      li.appendChild(a);
      list.appendChild(li);
    });
    $('list-empty').hidden = res.data.sales.length > 0;
    $('list').hidden = false;
  });
})();
