/*
 * Till Agent sandbox: a stand-in for Paymentsense Connect-E's client.js.
 *
 * Implements the documented surface (fact sheet §6):
 *   new Connect.ConnectE(config, displayErrors, onSubmitTriggered)   card number, expiry, CV2, name
 *   new Connect.ConnectERecurringPayment(config, displayErrors)       CV2 only (card on file)
 *   instance.executePayment(extraInfo?) -> Promise<{statusCode, authCode, message}>
 * config: { paymentDetails: { paymentToken, amount?, currencyCode? }, containerId, onIframeLoaded?,
 *           text?: { cardNumber?, expiryDate?, cv2?, cardName? } }
 *
 * The real script renders the fields in an iframe of the provider; this one renders plain inputs
 * into the container (ids connect-e-card-number, connect-e-expiry, connect-e-cv2, connect-e-name)
 * and posts them to the simulator's /web/v1/payments/{token}/execute. When the card needs
 * 3-D Secure it shows its own modal (#connect-e-3ds with "Complete authentication" and
 * "Fail authentication") and posts the answer to /web/v1/payments/{token}/3ds, as the real SDK
 * shows its own 3-D Secure modal. The promise rejects with {message, statusCode?} when the
 * request never reached the gateway (invalid fields 400, token used or expired 401, unknown
 * token 404, 500). Always confirm the outcome through the REST API.
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

  function post(path, body) {
    return fetch(origin + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        return { status: r.status, body: j };
      });
    }, function () {
      return { status: 500, body: { statusCode: 500, message: 'the payment service could not be reached' } };
    });
  }

  function field(container, id, label, attrs) {
    var wrap = el('label', { 'for': id, 'class': 'connect-e-field', style: 'display:block;margin:0 0 10px' });
    wrap.appendChild(el('span', { style: 'display:block;margin-bottom:2px' }, label));
    var input = el('input', Object.assign({ id: id, autocomplete: 'off', style: 'font-size:16px;padding:6px;width:16em;max-width:100%' }, attrs));
    wrap.appendChild(input);
    container.appendChild(wrap);
    return input;
  }

  function threeDSecure() {
    return new Promise(function (resolve) {
      var overlay = el('div', { id: 'connect-e-3ds', role: 'dialog', 'aria-modal': 'true', 'aria-label': '3-D Secure',
        style: 'position:fixed;inset:0;background:rgba(0,0,0,.5);display:flex;align-items:center;justify-content:center;z-index:2147483647' });
      var box = el('div', { style: 'background:#fff;color:#111;padding:24px;border-radius:8px;max-width:360px;font:16px sans-serif' });
      box.appendChild(el('h2', { style: 'margin-top:0' }, '3-D Secure'));
      box.appendChild(el('p', {}, 'Sandbox bank: confirm this payment.'));
      var ok = el('button', { id: 'connect-e-3ds-complete', type: 'button' }, 'Complete authentication');
      var no = el('button', { id: 'connect-e-3ds-fail', type: 'button', style: 'margin-left:8px' }, 'Fail authentication');
      function done(passed) { overlay.remove(); resolve(passed); }
      ok.addEventListener('click', function () { done(true); });
      no.addEventListener('click', function () { done(false); });
      box.appendChild(ok);
      box.appendChild(no);
      overlay.appendChild(box);
      document.body.appendChild(overlay);
      ok.focus();
    });
  }

  function Payment(config, displayErrors, onSubmitTriggered, cv2Only) {
    if (!config || !config.paymentDetails || !config.paymentDetails.paymentToken) {
      throw new Error('config.paymentDetails.paymentToken is required');
    }
    var container = document.getElementById(config.containerId);
    if (!container) { throw new Error('no element with id "' + config.containerId + '"'); }
    this.token = config.paymentDetails.paymentToken;
    this.displayErrors = typeof displayErrors === 'function' ? displayErrors : function () {};
    this.cv2Only = cv2Only;
    this.busy = false;
    var text = config.text || {};
    var form = el('div', { 'class': 'connect-e-form' });
    if (!cv2Only) {
      this.number = field(form, 'connect-e-card-number', text.cardNumber || 'Card number', { inputmode: 'numeric', maxlength: '23' });
      this.expiry = field(form, 'connect-e-expiry', text.expiryDate || 'Expiry (MM/YY)', { inputmode: 'numeric', maxlength: '5', placeholder: 'MM/YY' });
    }
    this.cv2 = field(form, 'connect-e-cv2', text.cv2 || 'CV2', { inputmode: 'numeric', maxlength: '4', type: 'password' });
    if (!cv2Only) {
      this.name = field(form, 'connect-e-name', text.cardName || 'Name on card', { autocomplete: 'cc-name' });
    }
    if (typeof onSubmitTriggered === 'function') {
      form.addEventListener('keydown', function (e) { if (e.key === 'Enter') { onSubmitTriggered(); } });
    }
    container.textContent = '';
    container.appendChild(form);
    if (typeof config.onIframeLoaded === 'function') { setTimeout(config.onIframeLoaded, 0); }
  }

  Payment.prototype.fail = function (status, message) {
    this.displayErrors([message]);
    return Promise.reject({ statusCode: status, message: message });
  };

  Payment.prototype.finish = function (r) {
    var self = this;
    if (r.status !== 200) {
      return self.fail(r.body.statusCode || r.status, r.body.message || ('HTTP ' + r.status));
    }
    if (r.body.statusCode === 3 && r.body.threeDSecure) {
      return threeDSecure().then(function (passed) {
        return post('/web/v1/payments/' + encodeURIComponent(self.token) + '/3ds', { authenticated: passed });
      }).then(function (r2) { return self.finish(r2); });
    }
    self.displayErrors([]);
    var out = { statusCode: r.body.statusCode, message: r.body.message || '' };
    if (r.body.authCode) { out.authCode = r.body.authCode; }
    return out;
  };

  Payment.prototype.executePayment = function (extraInfo) {
    var self = this;
    if (self.busy) { return Promise.reject({ message: 'a payment is already being executed' }); }
    var body = Object.assign({}, extraInfo || {});
    var missing = [];
    if (!self.cv2Only) {
      body.cardNumber = self.number.value.replace(/\s+/g, '');
      body.expiryDate = self.expiry.value.trim();
      body.cardName = self.name.value.trim();
      if (!body.cardNumber) { missing.push('Card number is required'); }
      if (!body.expiryDate) { missing.push('Expiry date is required'); }
    }
    body.cv2 = self.cv2.value.trim();
    if (!body.cv2) { missing.push('CV2 is required'); }
    if (missing.length) {
      self.displayErrors(missing);
      return Promise.reject({ statusCode: 400, message: missing.join('; ') });
    }
    self.busy = true;
    return post('/web/v1/payments/' + encodeURIComponent(self.token) + '/execute', body)
      .then(function (r) { return self.finish(r); })
      .then(function (out) { self.busy = false; return out; }, function (err) { self.busy = false; throw err; });
  };

  function ConnectE(config, displayErrors, onSubmitTriggered) {
    Payment.call(this, config, displayErrors, onSubmitTriggered, false);
  }
  ConnectE.prototype = Object.create(Payment.prototype);
  ConnectE.prototype.constructor = ConnectE;

  function ConnectERecurringPayment(config, displayErrors) {
    Payment.call(this, config, displayErrors, null, true);
  }
  ConnectERecurringPayment.prototype = Object.create(Payment.prototype);
  ConnectERecurringPayment.prototype.constructor = ConnectERecurringPayment;

  global.Connect = global.Connect || {};
  global.Connect.ConnectE = ConnectE;
  global.Connect.ConnectERecurringPayment = ConnectERecurringPayment;
})(window);
