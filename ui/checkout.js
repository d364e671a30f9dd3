/*
 * The keyed-entry checkout page (GET /api/agent/payments/{id}/checkout).
 *
 * Loads nothing itself: the page has already loaded the provider's client.js. Renders its card
 * form (or the CV2 only, for a stored card), runs executePayment() — the provider's script shows
 * the 3-D Secure step itself — and reports that the promise settled to the agent, which asks the
 * provider's REST API what really happened. The page shows the agent's answer, never the
 * promise's: the promise only says when to look.
 */
(function () {
  'use strict';
  var main = document.getElementById('checkout');
  if (!main) { return; }
  var id = main.getAttribute('data-payment');
  var token = main.getAttribute('data-token');
  var cv2Only = main.getAttribute('data-form') === 'cv2';
  var errors = document.getElementById('checkout-errors');
  var status = document.getElementById('checkout-status');
  var pay = document.getElementById('checkout-pay');

  function showErrors(list) {
    errors.textContent = '';
    (list || []).forEach(function (m) {
      var li = document.createElement('li');
      li.textContent = String(m);
      errors.appendChild(li);
    });
  }

  function tell(state, text) {
    status.textContent = text;
    main.setAttribute('data-state', state);
    // The cashier screen (our own origin) frames this page and listens.
    if (window.parent && window.parent !== window) {
      window.parent.postMessage({ type: 'till-checkout', id: id, state: state }, window.location.origin);
    }
  }

  var words = {
    captured: 'Payment approved',
    recovered: 'Payment approved (recovered by FlexFactor)',
    authorized: 'Pre-authorisation approved',
    declined: 'Declined — ask for another card',
    cancelled: 'Cancelled',
    expired: 'Expired',
    failed: 'Failed'
  };

  function report(promiseResult, wait) {
    tell('checking', 'Checking with the card processor…');
    return fetch('/api/agent/payments/' + encodeURIComponent(id) + '/report', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ statusCode: promiseResult && promiseResult.statusCode })
    }).then(function (r) { return r.json(); }).then(function (p) {
      if (wait && p.state === 'pending' && !(p.awaiting && p.awaiting.type === 'resume')) {
        return fetch('/api/agent/payments/' + encodeURIComponent(id) + '?wait=20').then(function (r) { return r.json(); });
      }
      return p;
    }).then(function (p) {
      if (p.awaiting && p.awaiting.type === 'resume') {
        tell('waiting', 'Card authenticated — waiting for the till to complete it');
      } else {
        tell(p.state, (p.recoveredBy && words.recovered) || words[p.state] || p.state);
      }
      if (p.state !== 'pending') { pay.hidden = true; }
      return p;
    });
  }

  // Acquired payment sessions: its Components script renders the form for the session; the
  // signed outcome of confirmPayment() goes to the agent's return endpoint, which checks the
  // signature and asks Acquired before answering. (A script that navigates to the return URL
  // itself ends on the agent's return page, with the same checks.)
  if (main.getAttribute('data-provider') === 'acquired') {
    var acquired;
    var components;
    try {
      acquired = new window.Acquired('till-agent');
      components = acquired.components({ session: main.getAttribute('data-session') });
      components.create('payment', {}).mount('#acquired-container');
    } catch (e) {
      tell('error', 'The card form could not be loaded: ' + (e && e.message ? e.message : e));
      pay.disabled = true;
      return;
    }
    var settle = function (fields) {
      if (!fields) { return report(null, true); }
      tell('checking', 'Checking with the card processor…');
      return fetch('/api/agent/providers/acquired/return', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(fields)
      }).then(function (r) { return r.json(); }).then(function (p) {
        if (p.state === 'pending') {
          return fetch('/api/agent/payments/' + encodeURIComponent(id) + '?wait=20').then(function (r) { return r.json(); });
        }
        return p;
      }).then(function (p) {
        tell(p.state, words[p.state] || p.state);
        if (p.state !== 'pending') { pay.hidden = true; }
        return p;
      });
    };
    // A session lives 10 minutes. Shortly before its end, and only while the customer has not
    // pressed Pay, the page asks the agent for a fresh session for the same order and reloads on
    // it; a customer who pressed Pay finishes on this one. The agent refuses a renewal earlier
    // than its last two minutes or once anything was paid on the session.
    var paying = false;
    var expires = Number(main.getAttribute('data-expires')) || 0;
    var renewing = false;
    if (expires) {
      setInterval(function () {
        if (paying || renewing || expires - Date.now() > 90000) { return; }
        renewing = true;
        fetch('/api/agent/payments/' + encodeURIComponent(id) + '/renew', { method: 'POST' }).then(function (r) {
          if (r.ok) { window.location.reload(); return; }
          // 409: this session cannot be renewed (paid on, or over): stop asking.
          if (r.status !== 409) { renewing = false; }
        }, function () { renewing = false; });
      }, 5000);
    }
    pay.addEventListener('click', function () {
      paying = true;
      pay.disabled = true;
      showErrors([]);
      tell('paying', 'Processing…');
      acquired.confirmPayment({ components: components, redirect: 'never' }).then(function (out) {
        return settle(out && out.redirect && out.redirect.fields);
      }, function (err) {
        // Not accepted (invalid fields, an expired session): nothing was paid.
        var list = (err && err.invalid_parameters || []).map(function (p) { return p.parameter + ': ' + p.reason; });
        showErrors(list.length ? list : [err && err.title ? err.title : 'The payment could not be sent']);
        tell('pending', 'Check the card details and try again');
        paying = false;
        return { state: 'pending' };
      }).then(function (p) {
        pay.disabled = p && p.state !== 'pending';
      }, function () {
        tell('error', 'The till could not be reached');
        pay.disabled = false;
      });
    });
    return;
  }

  var form;
  try {
    var config = { paymentDetails: { paymentToken: token }, containerId: 'connect-e-container' };
    form = cv2Only
      ? new window.Connect.ConnectERecurringPayment(config, showErrors)
      : new window.Connect.ConnectE(config, showErrors, function () { pay.click(); });
  } catch (e) {
    tell('error', 'The card form could not be loaded: ' + (e && e.message ? e.message : e));
    pay.disabled = true;
    return;
  }

  // Decline recovery (FlexFactor): while the tender's form is sent, the page posts the same
  // card to FlexFactor's tokenization endpoint itself and hands the agent only the vault token
  // and the non-sensitive facts (docs/DECISIONS.md "FlexFactor"): the card number never reaches
  // the agent. Possible only where the card fields are in this document (a provider's iframe
  // cannot be read); otherwise a decline simply stands.
  var vaultUrl = main.getAttribute('data-vault-url');
  function vault() {
    var number = document.getElementById('connect-e-card-number');
    var expiry = document.getElementById('connect-e-expiry');
    var name = document.getElementById('connect-e-name');
    if (!vaultUrl || !number || !expiry) { return Promise.resolve(null); }
    var digits = String(number.value || '').replace(/\D+/g, '');
    var mmyy = String(expiry.value || '').split('/');
    var holder = String(name && name.value || '').trim().split(/\s+/);
    if (digits.length < 12 || mmyy.length !== 2) { return Promise.resolve(null); }
    var card = {
      first_name: holder[0] || '', last_name: holder.slice(1).join(' ') || '',
      number: digits, verification_value: '',
      month: mmyy[0].trim(), year: '20' + mmyy[1].trim()
    };
    return fetch(vaultUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ payment_method: { credit_card: card } })
    }).then(function (r) { return r.json(); }).then(function (v) {
      var m = v && v.transaction && v.transaction.payment_method;
      if (!m || !m.token) { return null; }
      return fetch('/api/agent/payments/' + encodeURIComponent(id) + '/vault', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          token: String(m.token),
          bin: digits.slice(0, 6),
          last4: digits.slice(-4),
          expiryMonth: parseInt(card.month, 10) || null,
          expiryYear: parseInt(card.year, 10) || null,
          holderName: (name && name.value || '').trim() || null
        })
      });
    }).catch(function () { return null; });
  }

  pay.addEventListener('click', function () {
    pay.disabled = true;
    tell('paying', 'Processing…');
    var vaulted = vault();
    form.executePayment().then(function (result) {
      return vaulted.then(function () { return report(result, true); });
    }, function (err) {
      // Never reached the gateway (invalid fields) or the token is used: the agent looks anyway.
      showErrors([err && err.message ? err.message : 'The payment could not be sent']);
      return vaulted.then(function () { return report(err, false); });
    }).then(function (p) {
      pay.disabled = p && p.state !== 'pending';
    }, function () {
      tell('error', 'The till could not be reached');
      pay.disabled = false;
    });
  });
})();
