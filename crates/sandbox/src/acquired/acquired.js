/*
 * Till Agent sandbox: a stand-in for Acquired.com's Components script (Acquired.js).
 *
 * Surface (fact sheet §5):
 *   var acquired = new Acquired(publicKey);
 *   var components = acquired.components({ session: '<session_id>' });
 *   var payment = components.create('payment' | 'cardForm' | 'cardNumber' | 'cardholderName' |
 *                                   'cardExpireDate' | 'cardCvv', { style: {...} });
 *   payment.mount('#payment-component');
 *   acquired.confirmPayment({ components: components, confirmParams: {...}, redirect: 'always' | 'never' })
 *     -> Promise<{ status, transaction_id, order_id, reason?, redirect }>
 *
 * The real script renders Acquired-hosted fields in iframes; this one renders plain inputs
 * (ids acquired-card-number, acquired-expiry (MM/YY), acquired-cvv, acquired-name) and posts them
 * to the simulator's Components host (the origin this script was loaded from). A card that needs
 * a 3-D Secure challenge opens the emulator as a modal (#acquired-tds) with one button per result
 * the tester may pick (ids acquired-tds-<status>[-<reason>]). When the session has a
 * tds.redirect_url and `redirect` is not 'never', the signed outcome is then form-POSTed to it
 * (top-level navigation), as the real flow does; the promise resolves first either way. It
 * rejects with { status: 'error', error_type, title, invalid_parameters? } when the card was not
 * accepted (invalid fields, expired or used session). Always confirm the outcome server-side.
 */
(function (global) {
  'use strict';

  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src, document.baseURI).origin : '';

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    return e;
  }

  function post(url, body) {
    return fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    }, function () {
      return { status: 0, body: { status: 'error', error_type: 'network', title: 'The payment service could not be reached.' } };
    });
  }

  var FIELDS = {
    cardNumber: ['acquired-card-number', 'Card number', { inputmode: 'numeric', maxlength: '23', autocomplete: 'cc-number' }],
    cardExpireDate: ['acquired-expiry', 'Expiry (MM/YY)', { inputmode: 'numeric', maxlength: '5', placeholder: 'MM/YY', autocomplete: 'cc-exp' }],
    cardCvv: ['acquired-cvv', 'CVV', { inputmode: 'numeric', maxlength: '4', type: 'password', autocomplete: 'cc-csc' }],
    cardholderName: ['acquired-name', 'Name on card', { autocomplete: 'cc-name' }]
  };
  var FORM = ['cardNumber', 'cardExpireDate', 'cardCvv', 'cardholderName'];

  function Component(type, options) {
    if (type !== 'payment' && type !== 'cardForm' && !FIELDS[type]) {
      throw new Error('unknown component type "' + type + '"');
    }
    this.type = type;
    this.options = options || {};
  }

  Component.prototype.mount = function (selector) {
    var host = typeof selector === 'string' ? document.querySelector(selector) : selector;
    if (!host) { throw new Error('no element matches "' + selector + '"'); }
    var style = (this.options.style && this.options.style.base) || {};
    var form = el('div', { 'class': 'acquired-' + this.type });
    if (this.type === 'payment') {
      form.appendChild(el('div', { 'class': 'acquired-methods', style: 'margin-bottom:8px;font-weight:bold' }, 'Card'));
    }
    var names = FIELDS[this.type] ? [this.type] : FORM;
    names.forEach(function (name) {
      var f = FIELDS[name];
      var wrap = el('label', { 'for': f[0], style: 'display:block;margin:0 0 10px' });
      wrap.appendChild(el('span', { style: 'display:block;margin-bottom:2px' }, f[1]));
      var input = el('input', Object.assign({ id: f[0], style: 'font-size:16px;padding:6px;width:16em;max-width:100%;color:' + (style.color || 'inherit') }, f[2]));
      wrap.appendChild(input);
      form.appendChild(wrap);
    });
    host.textContent = '';
    host.appendChild(form);
    this.mounted = true;
    return this;
  };

  function Components(config) {
    if (!config || !config.session) { throw new Error('components({ session }) needs the session_id'); }
    this.session = config.session;
    this.list = [];
  }

  Components.prototype.create = function (type, options) {
    var c = new Component(type, options);
    this.list.push(c);
    return c;
  };

  function value(id) {
    var e = document.getElementById(id);
    return e ? e.value.trim() : '';
  }

  function challenge(url) {
    return new Promise(function (resolve) {
      var overlay = el('div', { id: 'acquired-tds', role: 'dialog', 'aria-modal': 'true', 'aria-label': '3-D Secure',
        style: 'position:fixed;inset:0;background:rgba(0,0,0,.5);display:flex;align-items:center;justify-content:center;z-index:2147483647' });
      var box = el('div', { style: 'background:#fff;color:#111;padding:24px;border-radius:8px;max-width:420px;font:16px sans-serif' });
      box.appendChild(el('h2', { style: 'margin-top:0' }, '3-D Secure emulator'));
      box.appendChild(el('p', {}, 'Sandbox bank: pick the result of this challenge.'));
      var results = [['success', ''], ['tds_failed', 'low_confidence'], ['tds_failed', 'suspected_fraud'],
        ['tds_expired', 'challenge_time_out'], ['tds_error', 'acs_technical_issue'], ['declined', 'generic_decline']];
      results.forEach(function (r) {
        var id = 'acquired-tds-' + r[0] + (r[1] ? '-' + r[1] : '');
        var b = el('button', { id: id, type: 'button', style: 'display:block;margin:6px 0' }, r[1] ? r[0] + ' / ' + r[1] : r[0]);
        b.addEventListener('click', function () {
          overlay.remove();
          resolve(post(url, { status: r[0], reason: r[1] }));
        });
        box.appendChild(b);
      });
      overlay.appendChild(box);
      document.body.appendChild(overlay);
    });
  }

  function submitRedirect(redirect) {
    var f = el('form', { method: 'POST', action: redirect.url, style: 'display:none' });
    Object.keys(redirect.fields || {}).forEach(function (k) {
      f.appendChild(el('input', { type: 'hidden', name: k, value: String(redirect.fields[k]) }));
    });
    document.body.appendChild(f);
    f.submit();
  }

  function Acquired(publicKey) {
    this.publicKey = publicKey;
    this.busy = false;
  }

  Acquired.prototype.components = function (config) {
    return new Components(config);
  };

  Acquired.prototype.confirmPayment = function (params) {
    var self = this;
    var components = params && params.components;
    if (!components || !components.session) { return Promise.reject({ status: 'error', error_type: 'bad_request', title: 'confirmPayment needs { components }' }); }
    if (self.busy) { return Promise.reject({ status: 'error', error_type: 'conflict', title: 'A payment is already being confirmed.' }); }
    var expiry = value('acquired-expiry').split('/');
    var card = {
      number: value('acquired-card-number').replace(/\s+/g, ''),
      expiry_month: (expiry[0] || '').trim(),
      expiry_year: (expiry[1] || '').trim(),
      cvv: value('acquired-cvv'),
      holder_name: value('acquired-name')
    };
    self.busy = true;
    var base = origin + '/v1/';
    return post(base + 'components/sessions/' + encodeURIComponent(components.session) + '/confirm',
      { card: card, confirm_params: params.confirmParams || {} })
      .then(function (r) {
        if (r.status === 200 && r.body.status === 'tds_pending' && r.body.tds) { return challenge(r.body.tds.url); }
        return r;
      })
      .then(function (r) {
        self.busy = false;
        if (r.status !== 200) { throw r.body; }
        var out = r.body;
        if (out.redirect && params.redirect !== 'never') { setTimeout(function () { submitRedirect(out.redirect); }, 0); }
        return out;
      }, function (e) { self.busy = false; throw e; });
  };

  global.Acquired = Acquired;
})(window);
