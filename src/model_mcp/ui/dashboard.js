/* model-mcp dashboard: the views, and two transport adapters (MCP Apps over postMessage; JSON-RPC to /mcp).
 *
 * Every text that comes from the server (model names, versions, tags, file names, error sentences,
 * history details) is untrusted: it is only ever put into the page as text (textContent, text nodes,
 * attribute values that are neither URLs nor handlers). Nothing here parses markup from data.
 */
(function () {
  'use strict';

  var TRANSPORT = document.documentElement.getAttribute('data-transport');
  var APP_PROTOCOL = '2026-01-26';
  var MCP_PROTOCOL = '2025-11-25';
  var CLIENT_INFO = { name: 'model-mcp-dashboard', version: '1' };
  var PAGE_SIZES = [25, 50, 100];
  var REFRESH_MS = 10000;
  var MAX_SAMPLES = 360;

  // ------------------------------------------------------------------ small DOM helpers
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === undefined || value === null || value === false) return;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'class') node.className = value;
        else if (key.slice(0, 2) === 'on') node.addEventListener(key.slice(2), value);
        else if (key === 'value') node.value = value;
        else if (key === 'checked' || key === 'disabled' || key === 'hidden') node[key] = Boolean(value);
        else node.setAttribute(key, value === true ? '' : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function text(value) { return value === undefined || value === null || value === '' ? '—' : String(value); }
  function fmtDate(iso) {
    if (!iso) return '—';
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  }
  function fmtNum(n, digits) {
    if (n === undefined || n === null || typeof n !== 'number' || !isFinite(n)) return '—';
    return n.toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 2 : digits });
  }
  function fmtPct(n) { return typeof n === 'number' && isFinite(n) ? fmtNum(n * 100, 2) + ' %' : '—'; }
  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    var units = ['B', 'KB', 'MB', 'GB'], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return fmtNum(n, i ? 1 : 0) + ' ' + units[i];
  }
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function badge(value, kind) { return el('span', { class: 'badge ' + String(kind || value).replace(/[^a-z_-]/gi, ''), text: text(value) }); }
  function field(label, control, cls) {
    var id = control.id || ('f' + Math.random().toString(36).slice(2, 9));
    control.id = id;
    return el('div', { class: 'field ' + (cls || '') }, el('label', { for: id, text: label }), control);
  }
  function table(caption, headers, rows) {
    var head = el('tr', null, headers.map(function (h) {
      var label = typeof h === 'object' ? h.label : h;
      return el('th', { scope: 'col', class: h.cls || null }, h.hidden ? el('span', { class: 'sr-only', text: label }) : label);
    }));
    var body = el('tbody', null, rows);
    return el('div', { class: 'table-wrap' }, el('table', null, el('caption', { text: caption }), el('thead', null, head), body));
  }
  function dl(pairs) {
    return el('dl', { class: 'meta' }, pairs.map(function (p) { return [el('dt', { text: p[0] }), el('dd', null, p[1])]; }));
  }
  function plain(value) {
    if (value === undefined || value === null) return '—';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  // ------------------------------------------------------------------ errors
  function ToolFailure(code, sentence, report) {
    this.code = code; this.sentence = sentence; this.report = report;
    this.message = (code ? '[' + code + '] ' : '') + sentence;
  }
  ToolFailure.prototype = Object.create(Error.prototype);

  /* A tool error's text: "[code] sentence", maybe after "Error executing tool X: ", maybe with "\nReport: {...}". */
  function failureFromText(raw) {
    var s = String(raw || 'The call failed.').replace(/^Error executing tool [^:]*:\s*/, '');
    var report = null;
    var at = s.indexOf('\nReport: ');
    if (at >= 0) {
      try { report = JSON.parse(s.slice(at + 9)); } catch (e) { report = null; }
      s = s.slice(0, at);
    }
    var m = /^\[([a-z_]+)\]\s*([\s\S]*)$/.exec(s.trim());
    return m ? new ToolFailure(m[1], m[2].trim(), report) : new ToolFailure('', s.trim(), report);
  }
  function asFailure(err) {
    if (err instanceof ToolFailure) return err;
    return failureFromText(err && err.message ? err.message : String(err));
  }
  function errorNotice(err) {
    var f = asFailure(err);
    var box = el('div', { class: 'notice error', role: 'alert' });
    if (f.code) append(box, el('code', { class: 'code', text: '[' + f.code + ']' }));
    append(box, el('span', { class: 'sentence', text: f.sentence }));
    if (f.report && Array.isArray(f.report.checks)) {
      var failed = f.report.checks.filter(function (c) { return c.status === 'fail'; });
      if (failed.length) {
        append(box, el('ul', null, failed.map(function (c) { return el('li', null, el('strong', { text: c.name + ': ' }), c.detail); })));
      }
    }
    return box;
  }
  function okNotice(message) { return el('div', { class: 'notice ok', role: 'status' }, message); }

  // ------------------------------------------------------------------ adapter: MCP Apps (postMessage to the host)
  function appAdapter(hooks) {
    var nextId = 1, pending = {};
    var lastSize = '';
    function send(message) { window.parent.postMessage(message, '*'); }
    function request(method, params) {
      var id = nextId++;
      return new Promise(function (resolve, reject) {
        pending[id] = { resolve: resolve, reject: reject };
        send({ jsonrpc: '2.0', id: id, method: method, params: params || {} });
      });
    }
    function notify(method, params) { send({ jsonrpc: '2.0', method: method, params: params || {} }); }
    function answer(id, result) { send({ jsonrpc: '2.0', id: id, result: result }); }
    window.addEventListener('message', function (event) {
      if (event.source !== window.parent) return;  // only the host speaks to us
      var m = event.data;
      if (!m || typeof m !== 'object' || m.jsonrpc !== '2.0') return;
      if (m.method === undefined && m.id !== undefined && pending[m.id]) {
        var p = pending[m.id];
        delete pending[m.id];
        if (m.error) p.reject(new Error(String(m.error.message || 'The host refused the request.')));
        else p.resolve(m.result);
        return;
      }
      switch (m.method) {
        case 'ui/notifications/host-context-changed': hooks.context(m.params || {}); break;
        case 'ui/notifications/tool-input': hooks.toolInput((m.params && m.params.arguments) || {}); break;
        case 'ui/notifications/tool-result': hooks.toolResult(m.params || {}); break;
        case 'ui/resource-teardown': case 'ping': if (m.id !== undefined) answer(m.id, {}); break;
        default:
          if (m.id !== undefined && m.method) send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } });
      }
    });
    function reportSize() {
      // The content's own box, not scrollHeight: that never drops below the iframe's height, so it could only grow.
      var box = document.documentElement.getBoundingClientRect();
      var size = { width: Math.ceil(box.width), height: Math.ceil(box.height) };
      var key = size.width + 'x' + size.height;
      if (key !== lastSize) { lastSize = key; notify('ui/notifications/size-changed', size); }
    }
    return {
      name: 'MCP App',
      start: function () {
        return request('ui/initialize', {
          protocolVersion: APP_PROTOCOL, appInfo: CLIENT_INFO,
          appCapabilities: { availableDisplayModes: ['inline', 'fullscreen'] }
        }).then(function (result) {
          hooks.context((result && result.hostContext) || {});
          notify('ui/notifications/initialized', {});
          if (window.ResizeObserver) new ResizeObserver(reportSize).observe(document.body);
          reportSize();
          var host = result && result.hostInfo && result.hostInfo.name;
          return 'in ' + (host ? String(host) : 'the host');
        });
      },
      callTool: function (name, args) { return request('tools/call', { name: name, arguments: args || {} }); },
      readResource: function (uri) { return request('resources/read', { uri: uri }); },
      uploadProgress: false
    };
  }

  // ------------------------------------------------------------------ adapter: browser (JSON-RPC to /mcp)
  function httpAdapter() {
    var TOKEN_KEY = 'model-mcp-token';
    var endpoint = new URL('mcp', window.location.href).toString();
    var sessionId = null, session = null, nextId = 1;
    function storedToken() { try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } }
    function keepToken(token) { try { window.sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode */ } }

    /* One POST. Answers {status, message}: the JSON-RPC message with our id, whether JSON or SSE came back. */
    function post(body, opts) {
      opts = opts || {};
      return new Promise(function (resolve, reject) {
        var xhr = new XMLHttpRequest();
        xhr.open('POST', endpoint);
        xhr.setRequestHeader('Content-Type', 'application/json');
        xhr.setRequestHeader('Accept', 'application/json, text/event-stream');
        if (sessionId) xhr.setRequestHeader('Mcp-Session-Id', sessionId);
        if (session && body.method !== 'initialize') xhr.setRequestHeader('MCP-Protocol-Version', MCP_PROTOCOL);
        var token = storedToken();
        if (token) xhr.setRequestHeader('Authorization', 'Bearer ' + token);
        if (opts.onUpload) {
          xhr.upload.onprogress = function (e) { if (e.lengthComputable) opts.onUpload(e.loaded, e.total); };
        }
        var seen = 0;
        xhr.onprogress = function () {  // server progress notifications arrive as SSE events while the call runs
          if (!opts.onProgress) return;
          var chunk = xhr.responseText;
          var events = sseMessages(chunk.slice(0, chunk.lastIndexOf('\n\n') + 2));
          events.slice(seen).forEach(function (m) {
            if (m.method === 'notifications/progress' && m.params) opts.onProgress(m.params.progress, m.params.total, m.params.message);
          });
          seen = Math.max(seen, events.length);
        };
        xhr.onerror = function () { reject(new ToolFailure('connection_failed', 'The server did not answer; is it still running?')); };
        xhr.onload = function () {
          var type = xhr.getResponseHeader('Content-Type') || '';
          var messages = [];
          if (type.indexOf('text/event-stream') >= 0) messages = sseMessages(xhr.responseText);
          else if (xhr.responseText) { try { messages = [JSON.parse(xhr.responseText)]; } catch (e) { messages = []; } }
          var mine = messages.filter(function (m) { return m && m.id === body.id && (m.result !== undefined || m.error !== undefined); })[0];
          if (!mine) mine = messages.filter(function (m) { return m && m.error; })[0] || null;
          resolve({ status: xhr.status, message: mine, sessionId: xhr.getResponseHeader('Mcp-Session-Id'),
                    challenge: xhr.getResponseHeader('WWW-Authenticate') || '' });
        };
        xhr.send(JSON.stringify(body));
      });
    }
    function sseMessages(textBody) {
      var out = [];
      textBody.split(/\r?\n\r?\n/).forEach(function (block) {
        var data = block.split(/\r?\n/).filter(function (l) { return l.indexOf('data:') === 0; })
          .map(function (l) { return l.slice(5).replace(/^ /, ''); }).join('\n');
        if (data) { try { out.push(JSON.parse(data)); } catch (e) { /* keep-alive or partial */ } }
      });
      return out;
    }
    /* 401: ask the person for the token (the dialog says why), then the caller retries. */
    function askToken(challenge) {
      return new Promise(function (resolve, reject) {
        var dialog = document.getElementById('token-dialog');
        var input = document.getElementById('token-input');
        var problem = document.getElementById('token-problem');
        var wrong = /invalid_token/.test(challenge);
        problem.hidden = !wrong;
        problem.textContent = wrong ? 'The server refused that token; check MODEL_MCP_TOKEN.' : '';
        input.value = '';
        function done() {
          cleanup();
          if (!input.value) { reject(new ToolFailure('unauthorized', 'This server needs its bearer token (MODEL_MCP_TOKEN); reload the page to enter it.')); return; }
          keepToken(input.value);
          dialog.close();
          resolve();
        }
        function onKey(e) { if (e.key === 'Enter') { e.preventDefault(); done(); } }
        function onCancel() { cleanup(); input.value = ''; reject(new ToolFailure('unauthorized', 'No token given; this server needs its bearer token (MODEL_MCP_TOKEN). Reload the page to enter it.')); }
        function cleanup() {
          document.getElementById('token-ok').removeEventListener('click', done);
          input.removeEventListener('keydown', onKey);
          dialog.removeEventListener('cancel', onCancel);
        }
        document.getElementById('token-ok').addEventListener('click', done);
        input.addEventListener('keydown', onKey);
        dialog.addEventListener('cancel', onCancel);
        if (!dialog.open) dialog.showModal();
        input.focus();
      });
    }
    function exchange(body, opts) {
      var attempts = 0;
      function attempt() {
        attempts++;
        return post(body, opts).then(function (r) {
          if (r.status === 401 && attempts < 4) return askToken(r.challenge).then(attempt);
          return r;
        });
      }
      return attempt();
    }
    function ensureSession() {
      if (session) return session;
      session = exchange({
        jsonrpc: '2.0', id: nextId++, method: 'initialize',
        params: { protocolVersion: MCP_PROTOCOL, capabilities: {}, clientInfo: CLIENT_INFO }
      }).then(function (r) {
        if (!r.message || r.message.error) throw failureFromHttp(r);
        sessionId = r.sessionId;
        return post({ jsonrpc: '2.0', method: 'notifications/initialized' }).then(function () { return r.message.result; });
      });
      session.catch(function () { session = null; sessionId = null; });
      return session;
    }
    function failureFromHttp(r) {
      if (r.message && r.message.error) return failureFromText(r.message.error.message);
      if (r.status === 401) return new ToolFailure('unauthorized', 'This server needs its bearer token (MODEL_MCP_TOKEN).');
      return new ToolFailure('http_' + r.status, 'The server answered HTTP ' + r.status + '.');
    }
    function rpc(method, params, opts) {
      var retried = false;
      function go() {
        return ensureSession().then(function () {
          return exchange({ jsonrpc: '2.0', id: nextId++, method: method, params: params }, opts);
        }).then(function (r) {
          if (r.status === 404 && sessionId && !retried) {  // the session expired: a new one, once
            retried = true; session = null; sessionId = null;
            return go();
          }
          if (!r.message || r.message.error) throw failureFromHttp(r);
          return r.message.result;
        });
      }
      return go();
    }
    return {
      name: 'browser',
      start: function () {
        return ensureSession().then(function (result) {
          var info = result && result.serverInfo;
          return info ? String(info.name) + ' ' + String(info.version) : 'connected';
        });
      },
      callTool: function (name, args, opts) {
        var params = { name: name, arguments: args || {} };
        if (opts && opts.onProgress) params._meta = { progressToken: 'p' + nextId };
        return rpc('tools/call', params, opts);
      },
      readResource: function (uri) { return rpc('resources/read', { uri: uri }); },
      uploadProgress: true
    };
  }

  // ------------------------------------------------------------------ the state and the tool calls
  var state = {
    view: 'models', version: null, info: null, models: null, deployed: null, deployedByModel: {}, model: null,
    filter: '', status: '', page: 0, pageSize: 50, samples: {}, timer: null, charts: []
  };
  var hooks = {
    context: applyHostContext,
    toolInput: function (args) {  // open_dashboard(version=...) called by the model: open on that version
      if (!args || typeof args.version !== 'string') return;
      if (started) show('version', args.version); else state.requested = args.version;
    },
    toolResult: function (result) {
      var s = result && result.structuredContent;
      if (s && typeof s === 'object' && 'read_only' in s) state.info = s;
    }
  };
  var transport = TRANSPORT === 'mcp-app' ? appAdapter(hooks) : httpAdapter();

  function call(name, args, opts) {
    return transport.callTool(name, args, opts).then(function (result) {
      result = result || {};
      var body = (result.content || []).filter(function (c) { return c && c.type === 'text'; }).map(function (c) { return c.text; }).join('\n');
      if (result.isError) throw failureFromText(body);
      if (result.structuredContent) return result.structuredContent;
      try { return JSON.parse(body); } catch (e) { return { text: body }; }
    });
  }
  function readJson(uri) {
    return transport.readResource(uri).then(function (result) {
      var c = result && result.contents && result.contents[0];
      return JSON.parse((c && c.text) || 'null');
    });
  }
  function refreshInfo() {
    return call('open_dashboard', {}).then(function (info) {
      state.info = info; state.deployed = info.deployed_version; setDeployed(info.deployed_versions);
      return info;
    });
  }
  // Several models may serve at once (one deployed version per model name). Views about "the
  // deployed model" (serving, drift, rollback) then ask which one: `modelArgs` names it.
  function setDeployed(byModel) {
    if (!byModel) return;
    state.deployedByModel = byModel;
    var names = Object.keys(byModel);
    if (names.indexOf(state.model) < 0) state.model = names.length ? names[0] : null;
  }
  function deployedNames() { return Object.keys(state.deployedByModel || {}); }
  function modelArgs(args) {
    args = args || {};
    if (deployedNames().length > 1 && state.model !== null) args.model_name = state.model;
    return args;
  }
  function modelPicker(onChange) {
    var names = deployedNames();
    var select = el('select', { 'aria-label': 'Model' }, names.map(function (n) {
      return el('option', { value: n, text: (n || '(unnamed)') + ' — ' + state.deployedByModel[n] });
    }));
    select.value = state.model;
    select.addEventListener('change', function () { state.model = select.value; onChange(); });
    var wrap = field('Model', select);
    wrap.hidden = names.length < 2;
    return wrap;
  }
  function servingVersions() {
    var versions = {};
    Object.keys(state.deployedByModel || {}).forEach(function (n) { versions[state.deployedByModel[n]] = true; });
    if (state.deployed) versions[state.deployed] = true;
    return versions;
  }
  function canChange() { return !(state.info && state.info.read_only); }

  // ------------------------------------------------------------------ theme and host context
  function applyHostContext(ctx) {
    if (!ctx || typeof ctx !== 'object') return;
    if (ctx.theme === 'dark' || ctx.theme === 'light') document.documentElement.setAttribute('data-theme', ctx.theme);
    var vars = ctx.styles && ctx.styles.variables;
    if (vars && typeof vars === 'object') {
      Object.keys(vars).forEach(function (k) {
        if (/^--[a-z0-9-]+$/.test(k) && typeof vars[k] === 'string') document.documentElement.style.setProperty(k, vars[k]);
      });
    }
    if (state.charts.length) rerenderCharts();
  }

  // ------------------------------------------------------------------ confirmation dialog
  function confirmChange(title, sentence, changes, okLabel, danger) {
    return new Promise(function (resolve) {
      var dialog = document.getElementById('confirm');
      var ok = document.getElementById('confirm-ok');
      var cancel = document.getElementById('confirm-cancel');
      document.getElementById('confirm-title').textContent = title;
      document.getElementById('confirm-text').textContent = sentence;
      var list = clear(document.getElementById('confirm-changes'));
      (changes || []).forEach(function (c) { list.appendChild(el('li', { text: c })); });
      ok.textContent = okLabel;
      ok.className = danger ? 'primary danger' : 'primary';
      var opener = document.activeElement;
      function finish(answer) {
        ok.removeEventListener('click', onOk); cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        if (opener && opener.focus) opener.focus();
        resolve(answer);
      }
      function onOk() { finish(true); }
      function onCancel(e) { if (e) e.preventDefault(); finish(false); }
      ok.addEventListener('click', onOk); cancel.addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      (danger ? cancel : ok).focus();
    });
  }

  /* Runs a changing call after its confirmation; shows the answer or "[code] sentence" in `where`. */
  function act(where, confirmArgs, run, describe, after) {
    return confirmChange.apply(null, confirmArgs).then(function (yes) {
      if (!yes) return;
      clear(where).appendChild(el('p', { class: 'muted', role: 'status', text: 'Working…' }));
      return run().then(function (answer) {
        clear(where).appendChild(okNotice(describe(answer)));
        return after && after(answer);
      }, function (err) {
        clear(where).appendChild(errorNotice(err));
      });
    });
  }

  // ------------------------------------------------------------------ navigation
  var main = document.getElementById('main');
  function show(view, version) {
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    state.charts.forEach(function (c) { c.plot.destroy(); });
    state.charts = [];
    state.view = view;
    if (version !== undefined) state.version = version;
    Array.prototype.forEach.call(document.querySelectorAll('#tabs button'), function (b) {
      if (b.getAttribute('data-view') === (view === 'version' ? 'models' : view)) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    });
    clear(main);
    var render = VIEWS[view] || VIEWS.models;
    var heading = el('h2', { tabindex: '-1' });
    main.appendChild(heading);
    var body = el('div');
    main.appendChild(body);
    return Promise.resolve(render(body, heading)).catch(function (err) { body.appendChild(errorNotice(err)); });
  }
  function focusHeading() { var h = main.querySelector('h2'); if (h) h.focus(); }

  // ------------------------------------------------------------------ view: models
  function renderModels(body, heading) {
    heading.textContent = 'Models';
    var filter = el('input', { type: 'search', value: state.filter, placeholder: 'version, name or status', autocomplete: 'off' });
    var status = el('select', null, ['', 'deployed', 'available', 'imported', 'failed', 'archived'].map(function (s) {
      return el('option', { value: s, text: s || 'any' });
    }));
    status.value = state.status;
    var size = el('select', null, PAGE_SIZES.map(function (n) { return el('option', { value: String(n), text: String(n) }); }));
    size.value = String(state.pageSize);
    var refresh = el('button', { type: 'button', text: 'Refresh' });
    var summary = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    var tbody = el('tbody');
    var pageLabel = el('span', { class: 'muted' });
    var prev = el('button', { type: 'button', text: '← Previous', 'aria-label': 'Previous page' });
    var next = el('button', { type: 'button', text: 'Next →', 'aria-label': 'Next page' });
    var notices = el('div');
    body.appendChild(el('div', { class: 'controls' },
      field('Filter', filter, 'grow'), field('Status', status), field('Per page', size), refresh));
    body.appendChild(notices);
    body.appendChild(summary);
    body.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'models-table' },
      el('caption', { class: 'sr-only', text: 'Registered model versions, newest first' }),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col', text: 'Status' }), el('th', { scope: 'col', text: 'Model' }),
        el('th', { scope: 'col', text: 'Version' }), el('th', { scope: 'col', class: 'num', text: 'Score' }),
        el('th', { scope: 'col', text: 'Created' }), el('th', { scope: 'col', class: 'hide-narrow', text: 'Imported' }))),
      tbody)));
    body.appendChild(el('div', { class: 'pager' }, prev, pageLabel, next));

    function matching() {
      var q = state.filter.trim().toLowerCase();
      return (state.models || []).filter(function (m) {
        if (state.status && m.status !== state.status) return false;
        if (!q) return true;
        return [m.version, m.model_name, m.status, m.semantic_version].concat(m.aliases || [], m.tags || []).some(function (v) { return v && String(v).toLowerCase().indexOf(q) >= 0; });
      });
    }
    function draw() {
      var rows = matching();
      var pages = Math.max(1, Math.ceil(rows.length / state.pageSize));
      state.page = Math.min(state.page, pages - 1);
      var start = state.page * state.pageSize;
      var shown = rows.slice(start, start + state.pageSize);
      clear(tbody);
      var frag = document.createDocumentFragment();
      var serving = servingVersions();
      shown.forEach(function (m) {
        var deployed = !!serving[m.version];
        frag.appendChild(el('tr', { 'data-version': m.version },
          el('td', null, badge(m.status), deployed && m.status !== 'deployed' ? [' ', badge('serving', 'serving')] : null),
          el('td', { class: 'wrap', text: text(m.model_name) }),
          el('td', { class: 'wrap' }, el('button', {
            type: 'button', class: 'link', text: m.version, 'aria-label': 'Open version ' + m.version,
            onclick: function () { show('version', m.version).then(focusHeading); }
          }), (m.aliases || []).map(function (a) { return [' ', badge('@' + a, 'alias')]; })),
          el('td', { class: 'num', text: m.quality_score === null || m.quality_score === undefined ? '—' : fmtNum(m.quality_score, 0) }),
          el('td', { text: fmtDate(m.created_at) }),
          el('td', { class: 'hide-narrow', text: fmtDate(m.imported_at) })));
      });
      tbody.appendChild(frag);
      if (!shown.length) tbody.appendChild(el('tr', null, el('td', { colspan: '6', class: 'muted', text: state.models && state.models.length ? 'No version matches the filter.' : 'No model is registered yet: import a package.' })));
      var names = deployedNames();
      var deployedText = names.length > 1 ? names.map(function (n) { return n + ' ' + state.deployedByModel[n]; }).join(', ') : (state.deployed || 'nothing');
      summary.textContent = (state.models ? state.models.length : 0) + ' version(s) registered; ' + rows.length + ' shown by the filter; deployed: ' + deployedText + '.';
      pageLabel.textContent = 'Page ' + (state.page + 1) + ' of ' + pages;
      prev.disabled = state.page === 0;
      next.disabled = state.page >= pages - 1;
    }
    function load() {
      summary.textContent = 'Loading…';
      return call('list_models', { limit: 10000 }).then(function (r) {
        state.models = r.models; state.deployed = r.deployed_version; setDeployed(r.deployed_versions);
        clear(notices);
        if (r.model_summaries && r.model_summaries.length > 1) notices.appendChild(modelSummaries(r.model_summaries));
        if (r.deployed_load_error) notices.appendChild(el('div', { class: 'notice warn', role: 'status' }, 'The deployed version could not be loaded: ', r.deployed_load_error));
        if (r.registry_problem) notices.appendChild(el('div', { class: 'notice warn', role: 'status' }, r.registry_problem));
        (r.warnings || []).forEach(function (w) { notices.appendChild(el('div', { class: 'notice warn', role: 'status' }, w)); });
        if (r.total > r.models.length) notices.appendChild(el('div', { class: 'notice warn', role: 'status', text: 'Only the newest ' + r.models.length + ' of ' + r.total + ' versions are listed.' }));
        draw();
      }, function (err) { summary.textContent = ''; clear(notices).appendChild(errorNotice(err)); });
    }
    var pending = null;
    filter.addEventListener('input', function () {
      clearTimeout(pending);
      pending = setTimeout(function () { state.filter = filter.value; state.page = 0; draw(); }, 80);
    });
    status.addEventListener('change', function () { state.status = status.value; state.page = 0; draw(); });
    size.addEventListener('change', function () { state.pageSize = Number(size.value); state.page = 0; draw(); });
    prev.addEventListener('click', function () { state.page--; draw(); });
    next.addEventListener('click', function () { state.page++; draw(); });
    refresh.addEventListener('click', load);
    if (state.models) draw();
    return load();
  }

  function modelSummaries(summaries) {
    return table('Models: one deployed version per model name', ['Model', 'Deployed', 'Versions', 'Latest', 'Memory'],
      summaries.map(function (s) {
        return el('tr', null, el('td', { class: 'wrap', text: text(s.model_name) }),
          el('td', null, s.deployed_version ? [badge('serving', 'serving'), ' ', s.deployed_version] : '—'),
          el('td', { class: 'num', text: fmtNum(s.versions, 0) }), el('td', { text: text(s.latest_version) }),
          el('td', { class: 'num', text: fmtBytes(s.memory_bytes) }));
      }));
  }
  function deployedOf(name) {
    var by = state.deployedByModel || {};
    return Object.keys(by).length ? (by[name || ''] || null) : state.deployed;
  }

  // ------------------------------------------------------------------ view: one version
  function renderVersion(body, heading) {
    var version = state.version;
    heading.textContent = 'Version ' + version;
    body.appendChild(el('p', null, el('button', { type: 'button', text: '← All models', onclick: function () { show('models').then(focusHeading); } })));
    var result = el('div', { class: 'action-result', 'aria-live': 'polite' });
    if (state.flash) { append(result, state.flash); state.flash = null; }
    var content = el('div', null, el('p', { class: 'muted', text: 'Loading…' }));
    body.appendChild(content);
    return Promise.all([
      call('get_model', { version: version }),
      readJson('models://' + version + '/validation').catch(function (err) { return { missing: asFailure(err) }; })
    ]).then(function (answers) {
      var model = answers[0], report = answers[1];
      var entry = model.entry || {}, meta = model.metadata || {};
      var deployed = entry.status === 'deployed';
      state.deployed = deployed ? version : state.deployed;
      var current = deployed ? version : deployedOf(entry.model_name);  // the version of this model serving now
      clear(content);
      content.appendChild(el('p', null, badge(entry.status), ' ', el('strong', { text: text(entry.model_name) }),
        ' ', el('span', { class: 'muted', text: 'source ' + text(entry.source) })));
      var buttons = el('div', { class: 'actions', role: 'group', 'aria-label': 'Actions on ' + version });
      if (canChange()) {
        buttons.appendChild(el('button', { type: 'button', text: 'Validate', onclick: function () {
          act(result, ['Validate ' + version + '?', 'Every check runs again on the stored files.', [
            'File hashes are re-read from disk, the model is loaded and probed.',
            'The report is saved; the status becomes available or failed' + (deployed ? ' (a deployed version stays deployed).' : '.')],
            'Validate'], function () { return call('validate', { version: version }); }, function (r) {
            return 'Validation ' + (r.passed ? 'passed' : 'failed') + ': quality ' + fmtNum(r.quality_score, 0) + '/100, ' +
              r.checks.filter(function (c) { return c.status === 'fail'; }).length + ' failed and ' +
              r.checks.filter(function (c) { return c.status === 'warn'; }).length + ' warning check(s).';
          }, reloadSoon);
        } }));
        buttons.appendChild(el('button', { type: 'button', class: 'primary', text: 'Deploy', disabled: deployed, onclick: function () {
          act(result, ['Deploy ' + version + '?', version + ' becomes the model that answers predict.', [
            current ? current + ' (serving now) becomes available; other models keep serving.' : 'No version of ' + text(entry.model_name) + ' serves now; ' + version + ' will.',
            'Validation runs first; if it fails, nothing changes' + (current ? ' and ' + current + ' keeps serving.' : '.')],
            'Deploy'], function () { return call('deploy', { version: version }); }, function (r) {
            return r.already_deployed ? version + ' was already deployed; nothing changed.' :
              'Deployed ' + r.deployed_version + (r.previous_version ? ' (before: ' + r.previous_version + ')' : '') +
              '; load ' + fmtNum(r.load_ms, 0) + ' ms, probe ' + fmtNum(r.probe_ms, 0) + ' ms.';
          }, reloadSoon);
        } }));
        if (!deployed && current && !entry.rollout && entry.status !== 'failed' && entry.status !== 'archived') {
          var share = el('input', { type: 'number', min: '1', max: '99', value: '10', inputmode: 'numeric', class: 'narrow' });
          buttons.appendChild(el('button', { type: 'button', text: 'Start shadow', onclick: function () {
            act(result, ['Start a shadow of ' + version + '?', version + ' scores every call of ' + text(entry.model_name) + ' beside ' + current + ', off the request path; it answers none.', [
              'It is validated first; if that fails, nothing changes.', 'Compare them in Rollouts; promote or abort there.'], 'Start shadow'],
              function () { return call('deploy', { version: version, mode: 'shadow' }); },
              function () { return 'A shadow of ' + version + ' runs beside ' + current + '.'; }, reloadSoon);
          } }));
          buttons.appendChild(field('Canary %', share));
          buttons.appendChild(el('button', { type: 'button', text: 'Start canary', onclick: function () {
            var pct = Number(share.value);
            act(result, ['Start a canary of ' + version + '?', version + ' answers ' + pct + ' % of the calls of ' + text(entry.model_name) + '; ' + current + ' the rest.', [
              'It is validated first; if that fails, nothing changes.', 'Compare them in Rollouts; promote or abort there.'], 'Start canary'],
              function () { return call('deploy', { version: version, mode: 'canary', traffic_percent: pct }); },
              function () { return 'A canary of ' + version + ' answers ' + pct + ' % of the calls.'; }, reloadSoon);
          } }));
        }
        if (!deployed) {
          buttons.appendChild(el('button', { type: 'button', text: 'Roll back to this version', onclick: function () {
            act(result, ['Roll back to ' + version + '?', version + ' is validated, then serves predict.', [
              current ? current + ' (serving now) becomes available.' : 'No version of ' + text(entry.model_name) + ' serves now.',
              'If validation fails, nothing changes.'], 'Roll back'],
              function () { return call('rollback', { to_version: version }); }, rollbackSentence, reloadSoon);
          } }));
        }
        buttons.appendChild(el('button', { type: 'button', class: 'danger', text: 'Delete', onclick: function () {
          act(result, ['Delete ' + version + '?', 'This cannot be undone.', [
            'Its files under models/, its validation report and its registry entry are removed.',
            'The deletion is recorded in the history.', deployed ? 'It is deployed now, so the server will refuse: deploy or roll back first.' : 'It does not serve, so predict is not affected.'],
            'Delete', true], function () { return call('delete_model', { version: version }); }, function (r) {
            return 'Deleted ' + r.version + '.';
          }, function () { state.models = null; });
        } }));
      } else {
        buttons.appendChild(el('p', { class: 'muted', text: 'The server is read-only: no action changes anything here.' }));
      }
      content.appendChild(buttons);
      content.appendChild(result);

      var cols = el('div', { class: 'columns' });
      content.appendChild(cols);
      var left = el('section', { 'aria-labelledby': 'sec-meta' }, el('h3', { id: 'sec-meta', text: 'Metadata' }));
      var metrics = meta.evaluation_metrics && typeof meta.evaluation_metrics === 'object' ? meta.evaluation_metrics : null;
      var known = ['model_name', 'created_at', 'model_type', 'feature_names', 'version', 'framework', 'training_info', 'evaluation_metrics', 'feature_profile'];
      var pairs = [
        ['Model type', text(meta.model_type || entry.model_type)],
        ['Framework', meta.framework ? plain(meta.framework.name) + ' ' + plain(meta.framework.version) : '—'],
        ['Created', fmtDate(entry.created_at)], ['Imported', fmtDate(entry.imported_at)],
        ['Deployed at', fmtDate(entry.deployed_at)], ['Path', el('span', { class: 'mono', text: text(entry.path) })],
        ['Features', Array.isArray(meta.feature_names) ? meta.feature_names.map(String).join(', ') : '—']
      ];
      if (meta.training_info && typeof meta.training_info === 'object') {
        Object.keys(meta.training_info).forEach(function (k) { pairs.push(['Training ' + k, plain(meta.training_info[k])]); });
      }
      if (metrics) Object.keys(metrics).forEach(function (k) { pairs.push([k, plain(metrics[k])]); });
      Object.keys(meta).forEach(function (k) { if (known.indexOf(k) < 0) pairs.push([k, plain(meta[k])]); });
      left.appendChild(dl(pairs));
      cols.appendChild(left);

      var right = el('section', { 'aria-labelledby': 'sec-validation' }, el('h3', { id: 'sec-validation', text: 'Validation' }));
      if (report && report.missing) right.appendChild(el('p', { class: 'muted', text: report.missing.sentence }));
      else if (report) {
        right.appendChild(el('p', null, badge(report.passed ? 'passed' : 'failed', report.passed ? 'pass' : 'fail'),
          ' quality score ', el('strong', { text: fmtNum(report.quality_score, 0) + '/100' }),
          el('span', { class: 'muted', text: ' · ' + fmtDate(report.generated_at) + (report.deep === false ? ' · shallow' : '') })));
        right.appendChild(table('Validation checks', ['Check', 'Result', 'Detail'], (report.checks || []).map(function (c) {
          return el('tr', null, el('td', { text: c.name }), el('td', null, badge(c.status)), el('td', { class: 'wrap', text: c.detail }));
        })));
        if (report.recommendations && report.recommendations.length) {
          right.appendChild(el('h3', { text: 'Recommendations' }));
          right.appendChild(el('ul', null, report.recommendations.map(function (r) { return el('li', { text: r }); })));
        }
        if (report.risks && report.risks.length) {
          right.appendChild(el('h3', { text: 'Risks' }));
          right.appendChild(el('ul', null, report.risks.map(function (r) { return el('li', { text: r }); })));
        }
      }
      cols.appendChild(right);

      content.appendChild(el('h3', { text: 'Files' }));
      var files = model.files || {};
      content.appendChild(table('Package files with their sha256', [{ label: 'File' }, { label: 'Size', cls: 'num' }, { label: 'sha256' }],
        Object.keys(files).sort().map(function (name) {
          return el('tr', null, el('td', { class: 'wrap', text: name }), el('td', { class: 'num', text: fmtBytes(files[name].size) }),
            el('td', { class: 'mono', text: files[name].sha256 }));
        })));
      content.appendChild(el('h3', { text: 'Deployments' }));
      content.appendChild(timeline(model.deployments || [], false));
    });
    function reloadSoon() {  // the answer stays on screen while the view shows the new state
      state.flash = Array.prototype.slice.call(result.childNodes);
      state.models = null;
      return refreshInfo().catch(function () {}).then(function () { return show('version', version); });
    }
  }
  function rollbackSentence(r) {
    return 'Now serving ' + r.deployed_version + (r.previous_version ? ' (before: ' + r.previous_version + ')' : '') +
      '; load ' + fmtNum(r.load_ms, 0) + ' ms.';
  }

  // ------------------------------------------------------------------ view: serving
  var RANGES = [['15 minutes', 900, 60], ['1 hour', 3600, 60], ['6 hours', 21600, 300], ['24 hours', 86400, 900]];
  function renderServing(body, heading) {
    heading.textContent = 'Serving';
    var status = el('div');
    var cards = el('div', { class: 'cards' });
    var alerts = el('div');
    var charts = el('div', { class: 'charts' });
    var note = el('p', { class: 'muted' });
    var result = el('div', { 'aria-live': 'polite' });
    var range = el('select', null, RANGES.map(function (r, i) { return el('option', { value: String(i), text: 'last ' + r[0] }); }));
    range.value = String(state.range || 1);
    var refresh = el('button', { type: 'button', text: 'Refresh' });
    var controls = el('div', { class: 'controls' }, modelPicker(function () { load(); }), field('Range', range), refresh);
    if (canChange()) {
      controls.appendChild(el('button', { type: 'button', text: 'Roll back', onclick: function () {
        var serving = deployedOf(state.model) || state.deployed;
        act(result, ['Roll back?', 'The server goes back to the version deployed before ' + (serving || 'the current one') + ', by the deployment history' + (deployedNames().length > 1 ? ' of ' + state.model : '') + '.', [
          (serving || 'The current version') + ' becomes available.', 'The target is validated before it serves; if it fails, nothing changes.'],
          'Roll back'], function () { return call('rollback', modelArgs({})); }, rollbackSentence, function () { state.models = null; return refreshInfo().then(load); });
      } }));
    }
    body.appendChild(controls);
    body.appendChild(result);
    body.appendChild(status);
    body.appendChild(cards);
    body.appendChild(alerts);
    body.appendChild(charts);
    body.appendChild(note);
    var withSeries = true;  // false once an answer comes without `series` (a server without the monitoring store)
    var loads = 0;  // only the latest load draws (a model picked while a refresh is in flight)

    function load() {
      var mine = ++loads;
      var args = {};
      if (withSeries) {  // the chosen range (cards and charts alike), not the figures since the deploy
        var r = RANGES[Number(range.value)];
        args.since = new Date(Date.now() - r[1] * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
        args.bucket_s = r[2];
      }
      return call('performance_report', modelArgs(args)).then(function (p) {
        if (mine !== loads) return;
        withSeries = Array.isArray(p.series);
        range.parentNode.hidden = !withSeries;
        clear(status).appendChild(el('p', null, p.serving === false ? badge('not serving', 'archived') : badge('serving', 'serving'), ' ',
          el('strong', { text: p.version }), el('span', { class: 'muted', text: ' deployed ' + fmtDate(p.deployed_at) +
            (p.scoring_path ? ' · scoring ' + p.scoring_path : '') })));
        if (p.covers) status.appendChild(el('p', { class: 'muted', text: p.covers }));
        clear(cards);
        [['Requests', fmtNum(p.n_requests, 0)], ['Rows', fmtNum(p.n_rows, 0)], ['Errors', fmtNum(p.n_errors, 0) + ' (' + fmtPct(p.error_rate) + ')'],
         ['Latency p50', fmtNum(p.latency_ms && p.latency_ms.p50) + ' ms'], ['Latency p95', fmtNum(p.latency_ms && p.latency_ms.p95) + ' ms'],
         ['Latency p99', fmtNum(p.latency_ms && p.latency_ms.p99) + ' ms'],
         // Rows over the span's wall-clock time, and how fast the server scores while busy: not the same figure.
         num(p.rows_per_wall_s) !== null ? ['Rows per minute', fmtNum(60 * p.rows_per_wall_s, 1)] : null,
         ['Throughput while busy', fmtNum(p.throughput_rows_per_s, 0) + ' rows/s'],
         ['Anomaly rate', fmtPct(p.anomaly_rate)], ['Model memory (estimate)', fmtBytes(p.memory_bytes)],
         peakRss(p.series) !== null ? ['Server memory (peak RSS)', fmtBytes(peakRss(p.series) * 1048576)] : null,
         ['Model file', fmtBytes(p.model_file_bytes)]
        ].forEach(function (c) { if (c) cards.appendChild(el('div', { class: 'card' }, el('div', { class: 'label', text: c[0] }), el('div', { class: 'value', text: c[1] }))); });
        clear(alerts);
        if (p.alerts && p.alerts.length) alerts.appendChild(alertList(p.alerts));
        var points = withSeries ? seriesPoints(p) : samplePoints(p);
        note.textContent = withSeries ? 'Buckets of ' + fmtNum(p.bucket_s, 0) + ' s from the monitoring store, ' + fmtDate(p.since) +
          ' to ' + fmtDate(p.until) + '; a bucket without requests counts 0 requests and has no latency.' :
          'This server gives no time series; the charts show what this page sampled every ' + (REFRESH_MS / 1000) + ' s since it opened.';
        drawCharts(charts, points);
      }, function (err) {
        clear(status).appendChild(errorNotice(err)); clear(cards); clear(charts);
      });
    }
    range.addEventListener('change', function () { state.range = Number(range.value); load(); });
    refresh.addEventListener('click', load);
    state.timer = setInterval(load, REFRESH_MS);
    return load();
  }
  /* The monitoring store's buckets -> columns for the charts (rates per minute), over the answer's span.
   * The store leaves out empty buckets: they are put back as 0 requests and rows (and no latency or
   * rate), so a line does not join two busy minutes across an idle hour. `bucket_s` is the answer's:
   * the server widens the asked one when a span would need too many buckets. */
  function seriesPoints(p) {
    var cols = { t: [], p50: [], p95: [], requests: [], rows: [], errors: [], anomaly: [], perMinute: true, span: null };
    var bucketS = num(p.bucket_s) || 60;
    var perMinute = 60 / bucketS;
    var byStart = {};
    (p.series || []).forEach(function (b) {
      var t = Date.parse(b.start) / 1000;
      if (isFinite(t)) byStart[t] = b;
    });
    var starts = Object.keys(byStart).map(Number);
    var from = Date.parse(p.since) / 1000, to = Date.parse(p.until) / 1000;
    if (isFinite(from) && isFinite(to) && to > from && (to - from) / bucketS <= 5000) {
      cols.span = [from, to];
      for (var t = Math.floor(from / bucketS) * bucketS; t < to; t += bucketS) if (!byStart[t]) starts.push(t);
    }
    starts.sort(function (a, b) { return a - b; });
    starts.forEach(function (t) {
      var b = byStart[t];
      cols.t.push(t);
      if (!b) {
        cols.p50.push(null); cols.p95.push(null); cols.requests.push(0); cols.rows.push(0); cols.errors.push(null); cols.anomaly.push(null);
        return;
      }
      cols.p50.push(num(b.latency_p50_ms)); cols.p95.push(num(b.latency_p95_ms));
      cols.requests.push(num(b.requests) === null ? null : b.requests * perMinute);
      cols.rows.push(num(b.rows) === null ? null : b.rows * perMinute);
      cols.errors.push(errorPct(b.requests, b.errors));
      cols.anomaly.push(b.anomaly_rate === null || b.anomaly_rate === undefined ? null : 100 * b.anomaly_rate);
    });
    return cols;
  }
  function num(v) { return typeof v === 'number' && isFinite(v) ? v : null; }
  /* The largest resident set a serving process reported in the span's buckets (MB), or null. */
  function peakRss(series) {
    var peak = null;
    (series || []).forEach(function (b) { if (num(b.rss_mb) !== null && (peak === null || b.rss_mb > peak)) peak = b.rss_mb; });
    return peak;
  }
  /* `requests` counts the answered ones and `errors` the refused ones: the rate is over both, as error_rate. */
  function errorPct(requests, errors) {
    var attempts = (num(requests) || 0) + (num(errors) || 0);
    return attempts ? 100 * (num(errors) || 0) / attempts : null;
  }
  /* Without `series`: this page's own samples of the cumulative figures, as rates between samples. */
  function samplePoints(p) {
    var list = state.samples[p.version] || (state.samples[p.version] = []);
    var now = Date.now() / 1000;
    list.push({ t: now, requests: p.n_requests, rows: p.n_rows, errors: p.n_errors,
                p50: p.latency_ms && p.latency_ms.p50, p95: p.latency_ms && p.latency_ms.p95, anomaly: p.anomaly_rate });
    if (list.length > MAX_SAMPLES) list.shift();
    var cols = { t: [], p50: [], p95: [], requests: [], rows: [], errors: [], anomaly: [], perMinute: true };
    list.forEach(function (s, i) {
      var prev = list[i - 1];
      var minutes = prev ? (s.t - prev.t) / 60 : 0;
      cols.t.push(s.t); cols.p50.push(num(s.p50)); cols.p95.push(num(s.p95));
      cols.requests.push(prev && minutes > 0 ? Math.max(0, s.requests - prev.requests) / minutes : null);
      cols.rows.push(prev && minutes > 0 ? Math.max(0, s.rows - prev.rows) / minutes : null);
      cols.errors.push(errorPct(s.requests, s.errors));
      cols.anomaly.push(s.anomaly === null || s.anomaly === undefined ? null : 100 * s.anomaly);
    });
    return cols;
  }
  function drawCharts(container, cols) {
    state.charts.forEach(function (c) { c.plot.destroy(); });
    state.charts = [];
    clear(container);
    var rate = cols.perMinute ? ' per minute' : ' per bucket';
    [
      { title: 'Latency (ms)', series: [['p50', cols.p50, '--accent'], ['p95', cols.p95, '--warn']] },
      { title: 'Requests and rows' + rate, series: [['requests', cols.requests, '--accent'], ['rows', cols.rows, '--ok']] },
      { title: 'Error and anomaly rate (%)', series: [['errors %', cols.errors, '--bad'], ['anomalies %', cols.anomaly, '--warn']] }
    ].forEach(function (spec, i) {
      var plotBox = el('div', { class: 'plot', role: 'img', 'aria-label': spec.title + ' over time' });
      var box = el('figure', { class: 'chart', id: 'chart-' + i }, el('h3', { text: spec.title }), plotBox, dataTable(spec, cols.t));
      box.style.margin = '0';
      container.appendChild(box);
      var drawn = spec.series.reduce(function (n, s) { return n + s[1].filter(function (v) { return v !== null; }).length; }, 0);
      box.setAttribute('data-points', String(drawn));
      state.charts.push({ box: box, plotBox: plotBox, spec: spec, t: cols.t, span: cols.span, plot: null });
    });
    // Plots are sized once every box is in the grid: a box measured alone would span the whole row.
    state.charts.forEach(function (entry) { entry.plot = makePlot(entry); });
  }
  function makePlot(entry) {
    var axisColor = cssVar('--color-text-secondary') || '#555', grid = cssVar('--color-border-primary') || '#ddd';
    var width = Math.max(260, entry.plotBox.clientWidth || entry.box.clientWidth - 16 || 320);
    var opts = {
      width: width, height: 190,
      // The asked span, not uPlot's guess around the points (one point alone spread over years).
      // Rates, counts and latencies start at 0, so a small change does not look like a cliff.
      scales: { x: entry.span ? { time: true, range: function () { return entry.span; } } : { time: true },
                y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      series: [{}].concat(entry.spec.series.map(function (s) {
        // Points where a lone value would not show as a line (gaps, few values); a full minute-by-minute line needs none.
        var dots = s[1].length <= 20 || s[1].some(function (v) { return v === null; });
        return { label: s[0], stroke: cssVar(s[2]) || '#2454c5', width: 2, spanGaps: !entry.span, points: { show: dots, size: 5 } };
      })),
      axes: [{ stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, space: 80 },  // room for '12:30pm'
             { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 56, values: compactTicks }]
    };
    var ts = entry.t;
    if (!entry.span && ts.length && Math.max.apply(null, ts) - Math.min.apply(null, ts) < 1) {
      // This page's own samples, one moment only: a refresh interval either side, not years.
      var half = REFRESH_MS / 1000;
      opts.scales.x.range = function () { return [ts[0] - half, ts[0] + half]; };
    }
    var data = [entry.t].concat(entry.spec.series.map(function (s) { return s[1]; }));
    return new window.uPlot(opts, data, entry.plotBox);
  }
  function compactTicks(u, ticks) {
    return ticks.map(function (v) {
      var a = Math.abs(v);
      if (a >= 1e6) return fmtNum(v / 1e6, 1) + 'M';
      if (a >= 1e4) return fmtNum(v / 1e3, 0) + 'k';
      return fmtNum(v, a < 10 ? 2 : 0);
    });
  }
  function rerenderCharts() {
    state.charts.forEach(function (c) { c.plot.destroy(); clear(c.plotBox); c.plot = makePlot(c); });
  }
  window.addEventListener('resize', function () {
    state.charts.forEach(function (c) { c.plot.setSize({ width: Math.max(260, c.plotBox.clientWidth), height: 190 }); });
  });
  function dataTable(spec, times) {
    return el('details', null, el('summary', { text: 'Data table' }),
      table(spec.title, ['Time'].concat(spec.series.map(function (s) { return s[0]; })), times.map(function (t, i) {
        return el('tr', null, el('td', { text: fmtDate(new Date(t * 1000).toISOString()) }),
          spec.series.map(function (s) { return el('td', { class: 'num', text: fmtNum(s[1][i]) }); }));
      })));
  }
  function alertList(list) {
    return el('ul', { class: 'alerts' }, list.map(function (a) {
      return el('li', null, badge(a.severity), ' ', el('strong', { text: a.kind }), ' ', el('span', { text: a.message }));
    }));
  }

  // ------------------------------------------------------------------ view: drift
  function renderDrift(body, heading) {
    heading.textContent = 'Drift';
    var windowInput = el('input', { type: 'number', min: '30', step: '1', placeholder: 'all recent rows', inputmode: 'numeric' });
    var run = el('button', { type: 'button', class: 'primary', text: 'Run drift report' });
    var out = el('div', { 'aria-live': 'polite' });
    var history = el('div');
    body.appendChild(el('div', { class: 'controls' }, modelPicker(function () {}), field('Window (rows)', windowInput), run));
    body.appendChild(out);
    body.appendChild(history);
    function load() {
      var args = {};
      if (windowInput.value) args.window = Number(windowInput.value);
      clear(out).appendChild(el('p', { class: 'muted', text: 'Computing…' }));
      return call('drift_report', modelArgs(args)).then(function (d) {
        clear(out);
        var pd = d.prediction_drift;
        var someDrift = (d.drifted_features || []).length > 0 || (pd && pd.drifted);
        out.appendChild(el('div', { class: 'notice ' + (d.dataset_drift ? 'error' : someDrift ? 'warn' : 'ok'), role: 'status', id: 'drift-verdict' },
          el('strong', { text: d.dataset_drift ? 'Dataset drift' : 'No dataset drift' }),
          ': ' + (d.drifted_features || []).length + ' of ' + (d.features || []).length + ' features drifted (' + fmtPct(d.share_drifted) + '). ',
          'Version ' + d.version + '; reference ' + d.reference_source + ' (' + fmtNum(d.n_reference, 0) + '), current ' +
          d.current_source + ' (' + fmtNum(d.n_current, 0) + ').'));
        var max = Math.max.apply(null, [0.0001].concat((d.features || []).map(function (f) { return Math.abs(f.drift_score) || 0; })));
        var adjusted = (d.features || []).some(function (f) { return typeof f.p_value_adjusted === 'number'; });
        var featureTable = table('Per-feature drift' + (adjusted ? ' (p-values adjusted for the number of features, as the verdicts use them)' : ''),
          [{ label: 'Feature' }, { label: 'Drift score', cls: 'num' }, { label: 'Severity' }, { label: 'p-value', cls: 'num' }, { label: 'Test', cls: 'hide-narrow' }, { label: 'Detail', cls: 'hide-narrow' }],
          (d.features || []).map(function (f) {
            var sev = f.severity || (f.drifted ? 'significant' : 'none');
            var bar = el('span', { class: 'bar ' + sev.replace(/[^a-z]/g, '') });
            bar.style.width = Math.round(60 * Math.min(1, Math.abs(f.drift_score || 0) / max)) + 'px';
            var p = typeof f.p_value_adjusted === 'number' ? f.p_value_adjusted : f.p_value;
            return el('tr', { 'data-feature': f.feature }, el('td', { class: 'wrap', text: f.feature }),
              el('td', { class: 'num nowrap' }, bar, fmtNum(f.drift_score, 3)),
              el('td', null, badge(sev), f.drifted ? ' drifted' : ''),
              el('td', { class: 'num nowrap', text: typeof p === 'number' ? p.toExponential(2) : '—' }),
              el('td', { class: 'hide-narrow', text: text(f.test) }), el('td', { class: 'wrap hide-narrow', text: text(f.detail) }));
          }));
        featureTable.id = 'drift-features';
        out.appendChild(featureTable);
        [['Predictions', pd, 'prediction-drift'], ['Performance', d.performance_drift, 'performance-drift'], ['Concept', d.concept_drift, 'concept-drift']].forEach(function (part) {
          var v = part[1];
          if (!v) return;
          var verdict = v.insufficient_data ? 'not judged' : v.drifted ? 'drifted' : 'no drift';
          out.appendChild(el('p', { id: part[2] }, el('strong', { text: part[0] + ': ' }),
            badge(verdict, v.drifted ? (v.severity || 'significant') : v.insufficient_data ? 'skip' : 'none'), ' ',
            typeof v.detail === 'string' ? v.detail : el('span', { class: 'mono', text: plain(v) })));
        });
        if (d.alerts && d.alerts.length) { out.appendChild(el('h3', { text: 'Alerts' })); var list = alertList(d.alerts); list.id = 'drift-alerts'; out.appendChild(list); }
        return drawHistory(d.version);
      }, function (err) { clear(out).appendChild(errorNotice(err)); return drawHistory(state.deployed); });
    }
    /* The last reports on the serving inputs, as the monitoring store keeps them (any client's, this page's too). */
    function drawHistory(version) {
      clear(history);
      if (!version) return;
      return readJson('models://' + version + '/drift').then(function (h) {
        clear(history).appendChild(el('h3', { text: 'Last reports on ' + version }));
        if (!h.reports.length) {
          history.appendChild(el('p', { class: 'muted', text: h.stored ? 'No report kept yet.' : 'This server keeps no monitoring store, so no report is kept.' }));
          return;
        }
        var reports = table('Reports on the serving inputs kept by the monitoring store, newest first',
          ['When', 'Verdict', 'Features drifted', 'Predictions', { label: 'Rows', cls: 'num hide-narrow' }, { label: 'Alerts', cls: 'hide-narrow' }],
          h.reports.map(function (r) {
            var features = r.drifted_features || [];
            return el('tr', null, el('td', { text: fmtDate(r.at) }),
              el('td', null, badge(r.dataset_drift ? 'drift' : 'no drift', r.dataset_drift ? 'fail' : features.length ? 'warn' : 'pass')),
              el('td', { class: 'wrap', text: features.length + ' (' + fmtPct(r.share_drifted) + ')' + (features.length ? ': ' + features.join(', ') : '') }),
              el('td', { text: r.prediction_drifted ? 'drifted' : 'no drift' }),
              el('td', { class: 'num hide-narrow', text: fmtNum(r.n_current, 0) }),
              el('td', { class: 'wrap hide-narrow', text: (r.alerts || []).map(function (a) { return a.severity + ' ' + a.kind; }).join(', ') || '—' }));
          }));
        reports.id = 'drift-history';
        history.appendChild(reports);
      }, function (err) { clear(history).appendChild(errorNotice(err)); });
    }
    run.addEventListener('click', load);
    return load();
  }

  // ------------------------------------------------------------------ view: alerts
  function renderAlerts(body, heading) {
    heading.textContent = 'Alerts';
    var active = el('input', { type: 'checkbox', checked: true });
    var severity = el('select', null, ['', 'info', 'warning', 'critical'].map(function (s) { return el('option', { value: s, text: s || 'any' }); }));
    var refresh = el('button', { type: 'button', text: 'Refresh' });
    var out = el('div', { 'aria-live': 'polite' });
    body.appendChild(el('div', { class: 'controls' }, field('Active only', active, 'check'), field('Severity', severity), refresh));
    body.appendChild(out);
    function load() {
      var args = { active_only: active.checked, limit: 200 };
      if (severity.value) args.severity = severity.value;
      return call('get_alerts', args).then(function (r) {
        clear(out);
        var list = r.alerts || [];
        if (!list.length) { out.appendChild(okNotice('No alert matches.')); return; }
        // At 400 px: the alert and its message, with when, how often and whether active on a line below it.
        out.appendChild(table('Alerts, newest first', [{ label: 'Alert' }, { label: 'Message' }, { label: 'Action', cls: 'hide-narrow' },
          { label: 'Last seen', cls: 'hide-narrow' }, { label: 'Count', cls: 'num hide-narrow' }, { label: 'Active', cls: 'hide-narrow' }],
          list.map(function (a) {
            var seen = fmtDate(a.last_seen) + (a.first_seen && a.first_seen !== a.last_seen ? ' (since ' + fmtDate(a.first_seen) + ')' : '');
            return el('tr', null,
              el('td', null, badge(a.severity), ' ', el('strong', { text: a.kind }), el('div', { class: 'muted wrap', text: text(a.version) })),
              el('td', { class: 'wrap' }, a.message, el('div', { class: 'muted show-narrow',
                text: 'Last seen ' + seen + ' · ' + fmtNum(a.count, 0) + ' time(s) · ' + (a.active ? 'active' : 'ended') })),
              el('td', { class: 'wrap hide-narrow', text: text(a.action) }), el('td', { class: 'hide-narrow', text: seen }),
              el('td', { class: 'num hide-narrow', text: fmtNum(a.count, 0) }), el('td', { class: 'hide-narrow', text: a.active ? 'yes' : 'no' }));
          })));
      }, function (err) {
        var f = asFailure(err);
        if (/unknown tool|not found/i.test(f.sentence) && !f.code) {
          // A server without get_alerts: the deployed version's current alerts from performance_report.
          return call('performance_report', modelArgs({})).then(function (p) {
            clear(out).appendChild(el('p', { class: 'muted', text: 'This server has no alert store; these are the deployed version\'s current alerts.' }));
            out.appendChild(p.alerts.length ? alertList(p.alerts) : okNotice('No alert now.'));
          }, function (e) { clear(out).appendChild(errorNotice(e)); });
        }
        clear(out).appendChild(errorNotice(err));
      });
    }
    [active, severity].forEach(function (c) { c.addEventListener('change', load); });
    refresh.addEventListener('click', load);
    return load();
  }

  // ------------------------------------------------------------------ view: history
  function timeline(events, withVersion) {
    if (!events.length) return el('p', { class: 'muted', text: 'No event yet.' });
    return el('ol', { class: 'timeline' }, events.map(function (e) {
      var failed = e.outcome && e.outcome !== 'ok' && e.outcome !== 'success';
      return el('li', { class: failed ? 'failed' : null },
        el('div', { class: 'when', text: fmtDate(e.at) }),
        el('div', { class: 'what' }, el('strong', { text: text(e.event) }), e.outcome ? badge(e.outcome, failed ? 'fail' : 'pass') : null,
          withVersion && e.version ? el('button', { type: 'button', class: 'link', text: e.version, 'aria-label': 'Open version ' + e.version,
            onclick: function () { show('version', e.version).then(focusHeading); } }) : null),
        e.detail ? el('div', { class: 'detail', text: plain(e.detail) }) : null);
    }));
  }
  function renderHistory(body, heading) {
    heading.textContent = 'History';
    var kind = el('select', null, [['all', 'everything'], ['deployments', 'deploys and rollbacks'], ['transfers', 'transfers']].map(function (k) {
      return el('option', { value: k[0], text: k[1] });
    }));
    var limit = el('select', null, [50, 200, 1000].map(function (n) { return el('option', { value: String(n), text: String(n) }); }));
    var out = el('div', { 'aria-live': 'polite' });
    body.appendChild(el('div', { class: 'controls' }, field('Events', kind), field('At most', limit),
      el('button', { type: 'button', text: 'Refresh', onclick: load })));
    body.appendChild(out);
    function load() {
      return call('get_history', { kind: kind.value, limit: Number(limit.value) }).then(function (r) {
        clear(out).appendChild(timeline(r.events || [], true));
      }, function (err) { clear(out).appendChild(errorNotice(err)); });
    }
    kind.addEventListener('change', load);
    limit.addEventListener('change', load);
    return load();
  }

  // ------------------------------------------------------------------ view: rollouts
  /* Each model's shadow or canary against its primary: the server's rollout_report, verdict first,
   * with promote and abort behind confirmations. Rollouts start from a version's page. */
  function renderRollouts(body, heading) {
    heading.textContent = 'Rollouts';
    var result = el('div', { class: 'action-result', 'aria-live': 'polite' });
    var out = el('div');
    body.appendChild(el('div', { class: 'controls' }, el('button', { type: 'button', text: 'Refresh', onclick: load })));
    body.appendChild(result);
    body.appendChild(out);
    function sideRow(label, primary, candidate) {
      return el('tr', null, el('th', { scope: 'row', text: label }), el('td', { class: 'num', text: primary }),
        el('td', { class: 'num', text: candidate }));
    }
    function ms(v) { return v === null || v === undefined ? '—' : fmtNum(v) + ' ms'; }
    function card(r) {
      var box = el('section', { class: 'rollout', 'data-model': r.model_name });
      box.appendChild(el('h3', null, text(r.model_name) + ': ', el('span', { text: r.mode + ' of ' + r.candidate_version }),
        ' beside ', el('span', { text: r.primary_version })));
      box.appendChild(el('p', null, badge(r.verdict, r.verdict === 'promote' ? 'ok' : r.verdict === 'reject' ? 'critical' : 'warning'),
        ' ', el('span', { class: 'muted', text: 'since ' + fmtDate(r.started_at) + (r.traffic_percent ? ' · ' + r.traffic_percent + ' % of calls' : ' · every call') +
          ' · ' + (r.policy_set ? 'the model\'s policy' : 'default thresholds (no policy)') })));
      box.appendChild(el('ul', { class: 'reasons' }, (r.reasons || []).map(function (x) { return el('li', { text: x }); })));
      var rows = [
        sideRow('Requests', fmtNum(r.requests.primary, 0), fmtNum(r.requests.candidate, 0)),
        sideRow('Anomaly rate', fmtPct(r.anomaly_rate_primary), fmtPct(r.anomaly_rate_candidate)),
        sideRow('Latency p50', ms(r.latency_p50_ms.primary), ms(r.latency_p50_ms.candidate)),
        sideRow('Latency p95', ms(r.latency_p95_ms.primary), ms(r.latency_p95_ms.candidate)),
        sideRow('Error rate', fmtPct(r.error_rate.primary), fmtPct(r.error_rate.candidate)),
        sideRow('Dataset drift', text(r.dataset_drift.primary), text(r.dataset_drift.candidate))
      ];
      box.appendChild(table('Primary and candidate since the rollout started', ['', 'Primary ' + r.primary_version, 'Candidate ' + r.candidate_version], rows));
      box.appendChild(dl([
        [r.mode === 'shadow' ? 'Rows compared' : 'Rows answered by the canary', fmtNum(r.rows, 0) + (r.rows_needed ? ' (' + fmtNum(r.rows_needed, 0) + ' more needed)' : '')],
        ['Label agreement', fmtPct(r.label_agreement)],
        ['Anomaly rates differ (p)', r.anomaly_rate_p_value === null ? '—' : fmtNum(r.anomaly_rate_p_value, 4)],
        ['Score rank correlation', r.score_rank_correlation === null ? '—' : fmtNum(r.score_rank_correlation, 4)],
        ['Rows dropped by the shadow', fmtNum(r.dropped_rows, 0)]]));
      if (canChange()) {
        var name = r.model_name;
        box.appendChild(el('div', { class: 'actions', role: 'group', 'aria-label': 'Rollout of ' + name },
          el('button', { type: 'button', class: 'primary', text: 'Promote ' + r.candidate_version, onclick: function () {
            act(result, ['Promote ' + r.candidate_version + '?', r.candidate_version + ' becomes the deployed version of ' + name + '.', [
              'It is validated again first; if that fails, nothing changes.', r.primary_version + ' becomes available.',
              'The verdict now: ' + r.verdict + '.'], 'Promote'],
              function () { return call('promote', { model_name: name }); },
              function (a) { return 'Now serving ' + a.deployed_version + ' (before: ' + a.previous_version + ').'; }, load);
          } }),
          el('button', { type: 'button', class: 'danger', text: 'Abort', onclick: function () {
            act(result, ['Abort the ' + r.mode + '?', r.primary_version + ' serves ' + name + ' alone.', [
              r.candidate_version + ' stays registered (available).', 'The abort is recorded in the history.'], 'Abort', true],
              function () { return call('abort_rollout', { model_name: name }); },
              function () { return 'The ' + r.mode + ' of ' + r.candidate_version + ' ended; ' + r.primary_version + ' serves alone.'; }, load);
          } })));
      }
      return box;
    }
    function load() {
      clear(out).appendChild(el('p', { class: 'muted', text: 'Loading…' }));
      return call('list_models', { limit: 10000 }).then(function (listing) {
        var running = (listing.models || []).filter(function (m) { return m.rollout; });
        if (!running.length) {
          clear(out).appendChild(el('p', { class: 'muted', text: 'No rollout is in progress. Start a shadow or a canary from a version\'s page (Models, then a version).' }));
          return;
        }
        return Promise.all(running.map(function (m) {
          return call('rollout_report', { model_name: m.model_name }).then(card, function (err) { return errorNotice(err); });
        })).then(function (cards) { clear(out); cards.forEach(function (c) { out.appendChild(c); }); });
      }, function (err) { clear(out).appendChild(errorNotice(err)); });
    }
    return load();
  }

  // ------------------------------------------------------------------ view: replicas
  /* The servers on one PostgreSQL database, from the heartbeat each writes (models://replicas): up or
   * missing, current with the registry or behind it, where each listens and what it serves. On a home
   * the server answers for itself alone and says why. Refreshed every REFRESH_MS while open. */
  function renderReplicas(body, heading) {
    heading.textContent = 'Replicas';
    var summary = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    var out = el('div');
    body.appendChild(el('div', { class: 'controls' }, el('button', { type: 'button', text: 'Refresh', onclick: load })));
    body.appendChild(summary);
    body.appendChild(out);
    function registryBadge(r) {
      if (r.current === null || r.current === undefined) return badge('not compared', 'skip');
      var was = r.state === 'up' ? '' : 'was ';  // a missing replica: what it served when last seen
      if (was) return badge(was + (r.current ? 'current' : 'behind (generation ' + text(r.applied_generation) + ')'), 'skip');
      return r.current ? badge('current', 'ok') : badge('behind (generation ' + text(r.applied_generation) + ')', 'warning');
    }
    function serves(r) {
      var names = Object.keys(r.serves || {}).sort();
      if (!names.length) return el('span', { class: 'muted', text: 'nothing' });
      return el('ul', { class: 'serves' }, names.map(function (n) {
        return el('li', null, el('span', { text: (n || '(unnamed)') + ' ' }), el('strong', { text: r.serves[n] }));
      }));
    }
    function seen(r) {
      if (!r.last_seen) return 'now (this server)';
      return fmtDate(r.last_seen) + ' · ' + fmtNum(r.seen_s_ago, 1) + ' s ago';
    }
    function row(r) {
      return el('tr', { 'data-replica': r.replica_id, 'data-state': r.state },
        el('td', { class: 'wrap' }, el('strong', { text: r.host_name }), r.this_process ? [' ', badge('this server', 'info')] : null,
          el('div', { class: 'mono address', text: r.address }),
          el('div', { class: 'muted mono', text: r.replica_id + ' · pid ' + r.pid })),
        el('td', { class: 'states' }, badge(r.state, r.state === 'up' ? 'ok' : 'critical'), ' ', registryBadge(r),
          r.note ? el('div', { class: 'detail muted', text: r.note }) : null),
        el('td', null, serves(r)),
        el('td', { class: 'hide-narrow', text: seen(r) }),
        el('td', { class: 'hide-narrow', text: text(r.server_version) + (r.artifact_root ? ' · shared artifacts' : '') }));
    }
    function load() {
      return readJson('models://replicas').then(function (a) {
        clear(out);
        summary.textContent = a.up + ' up, ' + a.missing + ' missing' + (a.database ? ' · ' + a.behind +
          ' behind the registry (generation ' + text(a.registry_generation) + ')' : '') + ' · refreshed every ' + (REFRESH_MS / 1000) + ' s.';
        if (a.note) out.appendChild(el('div', { class: 'notice warn', role: 'status' }, a.note));
        if (!(a.replicas || []).length) { out.appendChild(el('p', { class: 'muted', text: 'No replica to show.' })); return; }
        var list = table('Servers on this database, up first; missing: not seen for 3 heartbeat intervals', [
          { label: 'Replica and address' }, { label: 'State and registry' }, { label: 'Serves' },
          { label: 'Last seen', cls: 'hide-narrow' }, { label: 'Version', cls: 'hide-narrow' }], a.replicas.map(row));
        list.id = 'replicas';
        out.appendChild(list);
      }, function (err) { summary.textContent = ''; clear(out).appendChild(errorNotice(err)); });
    }
    state.timer = setInterval(load, REFRESH_MS);
    return load();
  }

  // ------------------------------------------------------------------ view: training service
  function renderTraining(body, heading) {
    heading.textContent = 'Training service';
    var out = el('div');
    var result = el('div', { 'aria-live': 'polite' });
    body.appendChild(el('div', { class: 'controls' }, el('button', { type: 'button', text: 'Scan again', onclick: load })));
    body.appendChild(result);
    body.appendChild(out);
    function load() {
      return call('scan_training_service', {}).then(function (r) {
        clear(out);
        out.appendChild(el('p', { class: 'muted' }, 'Folder ', el('span', { class: 'mono', text: r.training_dir }), ': ' + r.packages.length + ' package(s).'));
        var packages = table('Packages in the training service folder, newest first', [{ label: 'Version and model' },
          { label: 'Created', cls: 'hide-narrow' }, { label: 'State' }, { label: 'Where', cls: 'hide-narrow' }, { label: 'Action', hidden: true }],
          r.packages.map(function (p) {
            var importable = p.complete && !p.already_imported && canChange() && p.version;
            return el('tr', { 'data-version': p.version || null },
              el('td', { class: 'wrap package' }, el('strong', { text: text(p.version) }), el('div', { class: 'muted', text: text(p.model_name) })),
              el('td', { class: 'hide-narrow', text: fmtDate(p.created_at) }),
              el('td', null, badge(p.complete ? 'complete' : 'incomplete', p.complete ? 'pass' : 'warn'), ' ',
                badge(p.already_imported ? 'imported' : 'not imported', p.already_imported ? 'deployed' : 'skip'),
                (p.problems || []).length ? el('div', { class: 'detail muted', text: p.problems.map(plain).join(' ') }) : null),
              el('td', { class: 'mono hide-narrow', text: text(p.location) + ' (' + text(p.kind) + ')' }),
              el('td', null, importable ? el('button', { type: 'button', text: 'Import', 'aria-label': 'Import ' + p.version, onclick: function () {
                act(result, ['Import ' + p.version + '?', 'The package is copied from the training service into the store.', [
                  'It goes through the same checks as an upload and is registered with source training_service.',
                  'It is not deployed; the transfer is recorded in the history.'], 'Import'],
                  function () { return call('scan_training_service', { import_versions: [p.version] }); }, function (s) {
                    return s.imported.length ? 'Imported ' + s.imported.join(', ') + '.' : 'Nothing imported: ' + s.errors.map(function (e) { return '[' + e.code + '] ' + e.message; }).join(' ');
                  }, function () { state.models = null; return load(); });
              } }) : null));
          }));
        packages.id = 'training-packages';
        out.appendChild(packages);
        if (r.errors && r.errors.length) out.appendChild(el('ul', null, r.errors.map(function (e) { return el('li', { class: 'error' }, el('code', { text: '[' + e.code + ']' }), ' ', e.message); })));
      }, function (err) { clear(out).appendChild(errorNotice(err)); });
    }
    return load();
  }

  // ------------------------------------------------------------------ view: import
  function renderImport(body, heading) {
    heading.textContent = 'Import a model package';
    if (!canChange()) { body.appendChild(el('p', { class: 'muted', text: 'The server is read-only: it imports nothing.' })); return; }
    var file = el('input', { type: 'file', accept: '.zip,application/zip' });
    var upload = el('button', { type: 'button', class: 'primary', text: 'Upload and import' });
    var progress = el('progress', { max: '100', value: '0', hidden: true });
    var progressText = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    var path = el('input', { type: 'text', placeholder: '/srv/models/package.zip', autocomplete: 'off', spellcheck: 'false' });
    var byPath = el('button', { type: 'button', text: 'Import from path' });
    var result = el('div', { 'aria-live': 'polite' });
    progress.id = 'import-progress';
    body.appendChild(el('section', { 'aria-labelledby': 'imp-file' }, el('h3', { id: 'imp-file', text: 'Upload a ZIP' }),
      el('div', { class: 'controls' }, field('Package (.zip)', file, 'grow'), upload),
      el('label', { for: 'import-progress', class: 'sr-only', text: 'Upload progress' }), progress, progressText));
    body.appendChild(el('section', { 'aria-labelledby': 'imp-path' }, el('h3', { id: 'imp-path', text: 'Or a ZIP on the server' }),
      el('div', { class: 'controls' }, field('Path on the server', path, 'grow'), byPath)));
    body.appendChild(result);
    function shown(r) {
      state.models = null;
      var box = okNotice([r.already_present ? 'Already present: ' : 'Imported ', el('strong', { text: r.version }), ' (' + r.model_name + '), status ', badge(r.status),
        r.validation ? ' quality ' + fmtNum(r.validation.quality_score, 0) + '/100.' : '.']);
      var lists = [];
      if (r.warnings && r.warnings.length) lists.push(el('ul', null, r.warnings.map(function (w) { return el('li', { text: w }); })));
      if (r.extra_files && r.extra_files.length) lists.push(el('p', { class: 'muted', text: 'Other files kept: ' + r.extra_files.join(', ') }));
      clear(result).appendChild(box);
      append(result, lists);
      result.appendChild(el('button', { type: 'button', text: 'Open ' + r.version, onclick: function () { show('version', r.version).then(focusHeading); } }));
    }
    function busy(on) { upload.disabled = on; byPath.disabled = on; }
    upload.addEventListener('click', function () {
      var f = file.files && file.files[0];
      if (!f) { clear(result).appendChild(errorNotice(new ToolFailure('invalid_input', 'Choose a .zip file first.'))); return; }
      busy(true); clear(result);
      progress.hidden = false; progress.value = 0;
      progressText.textContent = 'Reading ' + f.name + '…';
      var reader = new FileReader();
      reader.onerror = function () { busy(false); clear(result).appendChild(errorNotice(new ToolFailure('invalid_input', 'The file could not be read.'))); };
      reader.onload = function () {
        var data = String(reader.result), comma = data.indexOf(',');
        progressText.textContent = transport.uploadProgress ? 'Uploading…' : 'Sending to the host…';
        call('import_zip', { content_base64: data.slice(comma + 1), filename: f.name }, {
          onUpload: function (done, total) {
            progress.value = Math.round(90 * done / total);
            progressText.textContent = 'Uploaded ' + fmtBytes(done) + ' of ' + fmtBytes(total) + (done >= total ? '; the server is checking the package…' : '');
          },
          onProgress: function (done, total, message) {
            if (total) progress.value = 90 + Math.round(10 * done / total);
            if (message) progressText.textContent = String(message);
          }
        }).then(function (r) { progress.value = 100; progressText.textContent = 'Done.'; shown(r); },
                function (err) { progressText.textContent = 'Refused.'; clear(result).appendChild(errorNotice(err)); })
          .then(function () { busy(false); });
      };
      reader.readAsDataURL(f);
    });
    byPath.addEventListener('click', function () {
      if (!path.value.trim()) { clear(result).appendChild(errorNotice(new ToolFailure('invalid_input', 'Give the path of a .zip on the server.'))); return; }
      busy(true); clear(result).appendChild(el('p', { class: 'muted', role: 'status', text: 'Importing…' }));
      call('import_zip', { path: path.value.trim() }).then(shown, function (err) { clear(result).appendChild(errorNotice(err)); })
        .then(function () { busy(false); });
    });
  }

  var VIEWS = { models: renderModels, version: renderVersion, serving: renderServing, rollouts: renderRollouts,
                drift: renderDrift, alerts: renderAlerts, replicas: renderReplicas,
                history: renderHistory, training: renderTraining, 'import': renderImport };

  // ------------------------------------------------------------------ start
  Array.prototype.forEach.call(document.querySelectorAll('#tabs button'), function (b) {
    b.addEventListener('click', function () { show(b.getAttribute('data-view')).then(focusHeading); });
  });
  var connection = document.getElementById('connection');
  var started = false;
  main.appendChild(el('p', { class: 'muted', role: 'status', text: 'Connecting to the server…' }));
  transport.start().then(function (where) {
    connection.textContent = 'connected · ' + where;
    return refreshInfo();
  }).then(function (info) {
    started = true;
    if (info.read_only) connection.textContent += ' · read-only';
    var focus = state.requested || info.version;
    return show(focus ? 'version' : 'models', focus || undefined);
  }).then(function () {
    document.body.setAttribute('data-ready', 'true');
  }).catch(function (err) {
    connection.textContent = 'not connected';
    clear(main).appendChild(errorNotice(err));
  });
})();
