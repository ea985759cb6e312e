// Klaxon duty board: one small vanilla script, no framework, no build step (src/desk/board.rs
// says why). It talks to the desk API under api/v1 with the bearer token the officer pasted; the
// token lives in sessionStorage only (gone when the tab closes, never in a URL or a cookie).
//
// Everything that came from alerts (titles, names, draft text) is untrusted: it is only ever put
// into the page with textContent, never as HTML, and the server's Content-Security-Policy forbids
// inline script, so a hostile alert title cannot run code in the duty officer's browser.
'use strict';
(function () {
  const API = 'api/v1';
  const TOKEN_KEY = 'klaxon.token';
  const LANG_KEY = 'klaxon.lang';
  const AMBER_MS = 30 * 60 * 1000;

  // ---------------------------------------------------------------- labels
  const LEVELS = {
    particularly_major: { zh: '特别重大', en: 'Particularly major', rank: 4 },
    major: { zh: '重大', en: 'Major', rank: 3 },
    relatively_major: { zh: '较大', en: 'Relatively major', rank: 2 },
    general: { zh: '一般', en: 'General', rank: 1 },
  };
  const KINDS = {
    initial: { zh: '初报', en: 'Initial report' },
    follow_up: { zh: '续报', en: 'Follow-up report' },
    summary: { zh: '总结报告', en: 'Summary report' },
    supplement: { zh: '补报', en: 'Supplementary report' },
  };
  const CHANNELS = {
    hotline: { zh: '电话', en: 'hotline' }, website: { zh: '网站', en: 'website' },
    wechat_mini_program: { zh: '微信小程序', en: 'WeChat mini program' }, wechat_account: { zh: '微信公众号', en: 'WeChat account' },
    wechat_official_account: { zh: '微信公众号', en: 'WeChat official account' },
    email: { zh: '电子邮件', en: 'email' }, fax: { zh: '传真', en: 'fax' },
  };
  const ROLES = {
    viewer: { zh: '只读', en: 'viewer' },
    duty_officer: { zh: '值班员', en: 'duty officer' },
    lead: { zh: '值班长', en: 'lead' },
  };
  // What each role may send (docs/spec.md §9); the desk enforces it, the board only hides what would fail.
  const ALLOWED = {
    viewer: [],
    duty_officer: ['ack', 'report_filed', 'resolve'],
    lead: ['ack', 'report_filed', 'resolve', 'dismiss', 'regrade', 'merge'],
  };
  const T = {
    en: {
      skip: 'Skip to content', board_title: 'Duty board', sign_out: 'Sign out',
      signin_title: 'Sign in', token: 'Token', sign_in: 'Sign in',
      signin_help: 'Paste your desk token. It is kept for this browser tab only and forgotten when the tab closes.',
      token_refused: 'The desk refused this token (401). Check it and sign in again.',
      desk_unreachable: 'The desk cannot be reached: ',
      f_level: 'Level', f_operator: 'Operator', f_province: 'Province', f_status: 'Status', any: 'All',
      st_open: 'Open', st_all: 'All', st_closed: 'Closed',
      c_level: 'Level', c_deadline: 'Time left', c_kind: 'Report', c_title: 'Incident',
      c_operator: 'Operator · province', c_recipients: 'Report to',
      empty: 'No incidents match.', count: (n, m) => `${n} shown of ${m}`,
      overdue: (m) => `overdue ${m} min`, left: 'left', by: 'by', filed: 'filed', no_clock: 'not reportable',
      closed: 'closed', conn_lost: 'Connection lost, retrying…', conn_retry: (s) => `Connection lost, retrying in ${s} s…`,
      conn_live: 'Live',
      back: '← Board', status: 'Status', opened: 'Opened', alerts: 'Alerts', operator: 'Operator', asset: 'Asset',
      reports: 'Reports', deadline: 'Deadline', recipients: 'Recipients', onward: 'Onward',
      figures: 'Figures', evidence: 'Evidence', indicator: 'Indicator', value: 'Value', threshold: 'Threshold',
      level: 'Level', guide_row: 'Guide row', timers: 'Pending timers', channels: 'Reporting channels (12387)',
      draft: 'Report draft (Measures art. 7)', copy: 'Copy', copy_all: 'Copy all', copied: 'Copied',
      copied_fallback: 'Copied (fallback)', copy_manual: 'Press Ctrl+C (⌘C) to copy the selected text',
      to_complete: 'to complete', timeline: 'Timeline', none: '—', actions: 'Actions',
      a_ack: 'Acknowledge', a_file: 'Report filed…', a_resolve: 'Resolve…', a_dismiss: 'Dismiss…',
      a_regrade: 'Regrade…', a_merge: 'Merge…', a_follow_up: 'Follow-up due…', cancel: 'Cancel', confirm: 'Confirm',
      kind: 'Report kind', channel: 'Channel', reference: 'Reference', note: 'Note', reason: 'Reason', into: 'Into incident',
      partial: 'Partial (补报): items （一）（二） now; the rest falls due as a supplementary report',
      q_ack: (id) => `Acknowledge ${id}? Your name is recorded.`,
      q_file: (id) => `Record that a report on ${id} was filed. Its countdown stops.`,
      q_resolve: (id) => `Resolve ${id}: the incident has ended. Reports already due stay due; a summary report falls due.`,
      q_dismiss: (id) => `Dismiss ${id} as a false positive: all its timers stop.`,
      q_regrade: (id) => `Set the level of ${id} by hand (overrides the computed level until the next regrade).`,
      q_merge: (id) => `Merge ${id} into another incident.`,
      q_follow_up: (id) => `Important new circumstances: a follow-up report (续报) on ${id} falls due.`,
      done: (what, id, by) => `${what}: sent for ${id} as ${by} and acknowledged by Kafka.`,
      refused: 'Refused: ', rejected: (id, why) => `Klaxon rejected the command on ${id}: ${why}`,
      required: (f) => `${f} is required.`, not_found: 'No such incident.',
      viewer_note: 'Read-only: your role cannot act on incidents.',
      no_signing_key: 'This desk has no signing key: it cannot send commands (desk.signing_key_file).',
      by_who: 'by', via: 'via', ongoing: 'ongoing', acknowledged: 'acknowledged', regraded: 'Regraded',
      computed: 'computed', cancelled: 'cancelled', late: 'filed late', backdated: 'backdated', received: 'received',
      filing: 'Filed', recipients_channels: 'Recipients and channels', no_match: 'No indicator meets a threshold.',
      at: 'At', timer: 'Timer', draft_help: 'Items marked ✎ must be completed by a person.',
    },
    zh: {
      skip: '跳到内容', board_title: '值班看板', sign_out: '退出',
      signin_title: '登录', token: '令牌', sign_in: '登录',
      signin_help: '粘贴值班台令牌。令牌只保存在本浏览器标签页中，关闭标签页即清除。',
      token_refused: '值班台拒绝了此令牌 (401)。请检查后重新登录。',
      desk_unreachable: '无法连接值班台：',
      f_level: '级别', f_operator: '运营者', f_province: '省份', f_status: '状态', any: '全部',
      st_open: '未结', st_all: '全部', st_closed: '已结',
      c_level: '级别', c_deadline: '剩余时间', c_kind: '报告', c_title: '事件',
      c_operator: '运营者 · 省份', c_recipients: '报告对象',
      empty: '没有符合条件的事件。', count: (n, m) => `显示 ${n} / 共 ${m}`,
      overdue: (m) => `已超时 ${m} 分钟`, left: '剩余', by: '截止', filed: '已报告', no_clock: '无需报告',
      closed: '已结', conn_lost: '连接中断，正在重试…', conn_retry: (s) => `连接中断，${s} 秒后重试…`,
      conn_live: '实时',
      back: '← 看板', status: '状态', opened: '发生', alerts: '告警数', operator: '运营者', asset: '资产',
      reports: '报告', deadline: '截止时间', recipients: '报告对象', onward: '逐级上报',
      figures: '数据', evidence: '定级依据', indicator: '指标', value: '数值', threshold: '阈值',
      level: '级别', guide_row: '指南条目', timers: '待触发计时', channels: '报告渠道 (12387)',
      draft: '报告草稿（《办法》第七条）', copy: '复制', copy_all: '全部复制', copied: '已复制',
      copied_fallback: '已复制（兼容方式）', copy_manual: '请按 Ctrl+C (⌘C) 复制已选中的文本',
      to_complete: '待填写', timeline: '时间线', none: '—', actions: '操作',
      a_ack: '确认接手', a_file: '已报告…', a_resolve: '结束事件…', a_dismiss: '误报关闭…',
      a_regrade: '调整级别…', a_merge: '合并…', a_follow_up: '需要续报…', cancel: '取消', confirm: '确认',
      kind: '报告类型', channel: '渠道', reference: '回执编号', note: '备注', reason: '理由', into: '并入事件',
      partial: '补报：先报第（一）（二）项，其余作为补报另行计时',
      q_ack: (id) => `确认接手 ${id}？将记录您的姓名。`,
      q_file: (id) => `记录 ${id} 已报告，其倒计时将停止。`,
      q_resolve: (id) => `结束 ${id}：事件已处置完毕。已到期的报告仍需报送；总结报告开始计时。`,
      q_dismiss: (id) => `将 ${id} 作为误报关闭：全部计时停止。`,
      q_regrade: (id) => `手动设定 ${id} 的级别（在下次调整前覆盖计算级别）。`,
      q_merge: (id) => `将 ${id} 并入另一事件。`,
      q_follow_up: (id) => `出现重要新情况：${id} 需要续报，开始计时。`,
      done: (what, id, by) => `已以 ${by} 的身份为 ${id} 提交「${what}」，Kafka 已确认收到。`,
      refused: '被拒绝：', rejected: (id, why) => `Klaxon 拒绝了 ${id} 的命令：${why}`,
      required: (f) => `${f}为必填项。`, not_found: '没有此事件。',
      viewer_note: '只读：您的角色不能操作事件。',
      no_signing_key: '本值班台未配置签名密钥，无法发送命令 (desk.signing_key_file)。',
      by_who: '操作人', via: '经由', ongoing: '持续中', acknowledged: '已接手', regraded: '人工定级',
      computed: '计算级别', cancelled: '已取消', late: '迟报', backdated: '补记时间', received: '收到于',
      filing: '报送情况', recipients_channels: '报告对象与渠道', no_match: '没有指标达到阈值。',
      at: '时间', timer: '计时', draft_help: '标有 ✎ 的项目须人工填写。',
    },
  };

  // ---------------------------------------------------------------- state
  const S = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    lang: localStorage.getItem(LANG_KEY) || ((navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en'),
    me: null, // {name, role}
    list: [], // incidents, as the API orders them (nearest open deadline first)
    detail: null,
    route: { page: 'board' },
    skewMs: 0, // server clock − browser clock, from the Date header
    offsetMin: null, // the desk's output offset (+08:00 by default), learnt from its timestamps
    streamUp: false,
    streamAbort: null,
    refreshTimer: 0,
    pending: new Map(), // incident id → label of the command we sent, to report a later rejection
  };

  const $ = (sel) => document.querySelector(sel);
  const t = (k, ...a) => {
    const v = (T[S.lang] && T[S.lang][k]) ?? T.en[k] ?? k;
    return typeof v === 'function' ? v(...a) : v;
  };
  const now = () => Date.now() + S.skewMs;

  /** Element builder: el('td', {class: 'x'}, 'text', child…). Text always goes in as text. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  /** The desk's error bodies are JSON (`error`, optionally `field`); be lenient with others. */
  function errorText(status, body) {
    if (body && typeof body === 'object') {
      const msg = body.error || body.message || body.reason || JSON.stringify(body);
      return body.field && !String(msg).includes(body.field) ? `${body.field}: ${msg}` : String(msg);
    }
    return body ? String(body) : `HTTP ${status}`;
  }

  async function api(path, opts = {}) {
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + S.token };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(`${API}/${path}`, {
      method: opts.method || 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store',
      credentials: 'omit',
    });
    noteSkew(r);
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
    if (r.status === 401) {
      signOut(t('token_refused'));
      throw new ApiError(401, t('token_refused'));
    }
    if (!r.ok) throw new ApiError(r.status, errorText(r.status, body), body && body.field);
    return body;
  }

  /** Countdowns must not depend on the PC's clock being right: use the desk's Date header. */
  function noteSkew(r) {
    const d = Date.parse(r.headers.get('Date') || '');
    if (!Number.isNaN(d)) {
      const skew = d - Date.now();
      // The header has 1 s resolution: ignore what that alone explains.
      S.skewMs = Math.abs(skew) > 1500 ? skew : 0;
    }
  }

  // ---------------------------------------------------------------- sign-in
  async function signIn(token) {
    S.token = token.trim();
    const me = await api('me');
    const role = String(me.role || 'viewer');
    S.me = {
      name: String(me.name || '?'),
      role,
      // The desk says which commands this principal may send; the role table is the fallback.
      commands: Array.isArray(me.commands) ? me.commands.map(String) : ALLOWED[role] || [],
      canWrite: me.can_write !== false,
    };
    sessionStorage.setItem(TOKEN_KEY, S.token);
  }

  function signOut(message) {
    if (S.streamAbort) S.streamAbort.abort();
    S.streamAbort = null;
    S.token = '';
    S.me = null;
    S.list = [];
    S.detail = null;
    sessionStorage.removeItem(TOKEN_KEY);
    setConn(null);
    show('signin');
    $('#signin-error').textContent = message || '';
    $('#token').value = '';
    $('#token').focus();
    renderHeader();
  }

  // ---------------------------------------------------------------- live stream
  // EventSource cannot send an Authorization header, and a token in the URL would end up in
  // proxy and access logs. So the stream is read with fetch(), which sends the bearer header like
  // every other request, and parsed as text/event-stream here (a few lines).
  async function runStream() {
    let backoff = 1000;
    while (S.token) {
      const ctrl = new AbortController();
      S.streamAbort = ctrl;
      let watchdog = 0;
      const arm = () => {
        clearTimeout(watchdog);
        // The desk sends a keep-alive comment well within this; silence means a dead connection.
        watchdog = setTimeout(() => ctrl.abort(), 45000);
      };
      try {
        const r = await fetch(`${API}/stream`, {
          headers: { Accept: 'text/event-stream', Authorization: 'Bearer ' + S.token },
          cache: 'no-store',
          credentials: 'omit',
          signal: ctrl.signal,
        });
        if (r.status === 401) { signOut(t('token_refused')); return; }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        backoff = 1000;
        setConn(true);
        arm();
        refreshSoon(); // catch up on whatever happened while we were away
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          buf += dec.decode(value, { stream: true });
          let m;
          while ((m = /\r?\n\r?\n/.exec(buf))) {
            const block = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            onSseBlock(block);
          }
        }
      } catch (_) {
        // fall through to the retry below
      } finally {
        clearTimeout(watchdog);
      }
      if (!S.token || S.streamAbort !== ctrl) return; // signed out, or replaced
      setConn(false, Math.round(backoff / 1000));
      await new Promise((res) => setTimeout(res, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  function onSseBlock(block) {
    const data = [];
    let type = 'message';
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
    }
    if (!data.length) return;
    let ev = null;
    try { ev = JSON.parse(data.join('\n')); } catch (_) { /* not JSON: still a change */ }
    onEvent(type, ev);
  }

  function onEvent(type, ev) {
    const id = ev && (ev.incident_id || (ev.incident && ev.incident.id) || ev.id);
    const kind = ev && (ev.type || type);
    if (kind === 'command.rejected' && id && S.pending.has(id)) {
      toast(t('rejected', id, (ev && ev.reason) || '?'), true);
      S.pending.delete(id);
    } else if (id && kind && kind !== 'command.rejected') {
      S.pending.delete(id);
    }
    refreshSoon(id);
  }

  /** Many events arrive in bursts (an alert opens, grades, falls due): refetch once per burst. */
  function refreshSoon(id) {
    if (id && S.route.page === 'incident' && S.route.id === id) S.detailStale = true;
    if (S.route.page === 'incident' && !id) S.detailStale = true;
    clearTimeout(S.refreshTimer);
    S.refreshTimer = setTimeout(refresh, 200);
  }

  async function refresh() {
    if (!S.token) return;
    try {
      await loadList();
      if (S.route.page === 'incident' && (S.detailStale || !S.detail)) {
        S.detailStale = false;
        await loadDetail(S.route.id);
      }
    } catch (e) {
      if (e.status !== 401) toast(t('desk_unreachable') + e.message, true);
    }
  }

  function setConn(up, retryIn) {
    S.streamUp = up;
    const c = $('#conn');
    if (up === null) { c.hidden = true; return; }
    c.hidden = false;
    c.className = up ? 'conn live' : 'conn lost';
    c.textContent = up ? t('conn_live') : retryIn ? t('conn_retry', retryIn) : t('conn_lost');
    c.dataset.state = up ? 'live' : 'lost';
  }

  // ---------------------------------------------------------------- board
  const status = () => $('#f-status').value || 'open';

  async function loadList() {
    const body = await api('incidents?status=' + encodeURIComponent(status()));
    S.list = Array.isArray(body) ? body : (body && (body.incidents || body.items)) || [];
    if (S.route.page === 'board') renderBoard();
  }

  /** A report still to be filed (the desk says so in `outstanding`). */
  const isOutstanding = (r) => (r.outstanding !== undefined ? r.outstanding : !r.filed_at && !r.cancelled) && !!r.deadline;

  /** The report a row is about: the outstanding one with the nearest deadline, else the last filed. */
  function rowReport(inc) {
    const reports = Array.isArray(inc.reports) ? inc.reports : [];
    const open = reports.filter(isOutstanding).sort((a, b) => Date.parse(a.deadline) - Date.parse(b.deadline));
    if (open.length) return { report: open[0], open: true };
    const filed = reports.filter((r) => r.filed_at);
    return filed.length ? { report: filed[filed.length - 1], open: false } : { report: null, open: false };
  }

  const levelOf = (x) => (x && LEVELS[x] ? x : 'general');
  function levelBadge(level, zh) {
    const l = levelOf(level);
    return el('span', { class: `lvl lvl-${l}`, title: `${LEVELS[l].zh} ${LEVELS[l].en}` },
      el('span', { class: 'lvl-zh', lang: 'zh' }, zh || LEVELS[l].zh),
      el('span', { class: 'lvl-en', lang: 'en' }, LEVELS[l].en));
  }
  const kindLabel = (k) => (KINDS[k] ? `${KINDS[k].zh} ${S.lang === 'zh' ? '' : KINDS[k].en}`.trim() : k || '');
  const opName = (op) => (op && typeof op === 'object' ? op.name || op.id || '' : op || '');
  const opId = (op) => (op && typeof op === 'object' ? op.id || op.name || '' : op || '');
  const opProvince = (op, inc) => (op && typeof op === 'object' && op.province) || (inc && inc.province) || '';

  function fillSelect(sel, values, label) {
    // Rebuilt only when the choices change, so a list open under the officer's hand stays open.
    const key = S.lang + '\u0000' + values.join('\u0000');
    if (sel.dataset.key === key) return;
    sel.dataset.key = key;
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '' }, t('any')));
    for (const v of values) sel.append(el('option', { value: v }, label ? label(v) : v));
    sel.value = values.includes(keep) ? keep : '';
  }

  function renderFilters() {
    const names = new Map(S.list.map((i) => [opId(i.operator), opName(i.operator)]));
    const ops = [...names.keys()].filter(Boolean).sort((a, b) => names.get(a).localeCompare(names.get(b)));
    const provs = [...new Set(S.list.map((i) => opProvince(i.operator, i)).filter(Boolean))].sort();
    fillSelect($('#f-level'), Object.keys(LEVELS), (l) => `${LEVELS[l].zh} ${LEVELS[l].en}`);
    fillSelect($('#f-operator'), ops, (id) => names.get(id) || id);
    fillSelect($('#f-province'), provs);
  }

  function filtered() {
    const lv = $('#f-level').value, op = $('#f-operator').value, pr = $('#f-province').value;
    return S.list.filter((i) => (!lv || levelOf(i.level) === lv) && (!op || opId(i.operator) === op) && (!pr || opProvince(i.operator, i) === pr));
  }

  function renderBoard() {
    renderFilters();
    const rows = filtered();
    const focusedId = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.incident;
    const tbody = $('#rows');
    tbody.replaceChildren(...rows.map(boardRow));
    $('#empty').hidden = rows.length > 0;
    $('#count').textContent = t('count', rows.length, S.list.length);
    if (focusedId) {
      const f = tbody.querySelector(`a[data-incident="${CSS.escape(focusedId)}"]`);
      if (f) f.focus();
    }
    tick();
  }

  function boardRow(inc) {
    const { report, open } = rowReport(inc);
    const closed = inc.status && inc.status !== 'open';
    const recips = (report && report.recipients) || inc.recipients || [];
    const clock = el('td', { class: 'clock-cell' });
    if (report && open) {
      clock.append(el('span', { class: 'countdown', dataset: { deadline: report.deadline } }),
        el('span', { class: 'sub' }, `${t('by')} ${shortTime(report.deadline)}`));
    } else if (report) {
      clock.append(el('span', { class: 'countdown stopped' }, `✓ ${t('filed')}`),
        el('span', { class: 'sub' }, shortTime(report.filed_at)));
    } else {
      clock.append(el('span', { class: 'countdown none' }, closed ? t('closed') : t('no_clock')));
    }
    return el('tr', { class: closed ? 'row closed' : 'row', dataset: { incident: inc.id } },
      el('td', {}, levelBadge(inc.level, inc.level_zh)),
      clock,
      el('td', { class: 'kind' }, report ? kindLabel(report.kind) : ''),
      el('td', { class: 'title' },
        el('a', { href: '#/incident/' + encodeURIComponent(inc.id), dataset: { incident: inc.id } }, inc.title || inc.id),
        inc.acknowledged ? el('span', { class: 'ack-tag', title: t('acknowledged') }, ` ✓ ${t('acknowledged')}`) : null,
        el('span', { class: 'sub mono' }, inc.id)),
      el('td', {}, opName(inc.operator), el('span', { class: 'sub' }, opProvince(inc.operator, inc))),
      el('td', { class: 'recips' }, recips.map((r) => el('span', { class: 'recip' }, r.name || r.id || String(r)))));
  }

  // ---------------------------------------------------------------- clocks
  function fmtLeft(ms) {
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
    return d > 0 ? `${d}${S.lang === 'zh' ? '天' : 'd'} ${hms}` : hms;
  }

  /** Runs every second: countdowns are computed from deadlines, not from when data arrived. */
  function tick() {
    const n = now();
    for (const c of document.querySelectorAll('[data-deadline]')) {
      const dl = Date.parse(c.dataset.deadline);
      if (Number.isNaN(dl)) { c.textContent = c.dataset.deadline; continue; }
      const left = dl - n;
      let cls, text;
      if (left < 0) {
        cls = 'over';
        text = t('overdue', Math.floor(-left / 60000));
      } else {
        cls = left < AMBER_MS ? 'warn' : 'ok';
        text = fmtLeft(left);
      }
      c.textContent = text;
      c.classList.remove('ok', 'warn', 'over');
      c.classList.add(cls);
      c.dataset.state = cls;
      const row = c.closest('tr');
      if (row) row.dataset.state = cls;
    }
    // The header clock reads in the desk's offset, like every time on the page.
    const clk = $('#clock');
    if (clk) {
      const off = S.offsetMin === null ? -new Date(n).getTimezoneOffset() : S.offsetMin;
      const hhmm = `${off < 0 ? '-' : '+'}${String(Math.floor(Math.abs(off) / 60)).padStart(2, '0')}:${String(Math.abs(off) % 60).padStart(2, '0')}`;
      clk.textContent = `${new Date(n + off * 60000).toISOString().slice(11, 19)} UTC${hhmm}`;
    }
  }

  /** Times are shown as the desk wrote them (its configured offset, +08:00 by default), so the
   * board, the events and the filed reports all name the same wall-clock time. */
  function shortTime(s) {
    if (!s) return '';
    learnOffset(s);
    const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d:\d\d(?::\d\d)?)/.exec(s);
    return m ? `${m[2]}-${m[3]} ${m[4]}` : s;
  }

  function learnOffset(s) {
    const m = /(Z|([+-])(\d\d):(\d\d))$/.exec(s);
    if (m) S.offsetMin = m[1] === 'Z' ? 0 : (m[2] === '-' ? -1 : 1) * (Number(m[3]) * 60 + Number(m[4]));
  }

  // ---------------------------------------------------------------- incident page
  /** The detail without what only the passing of time changes (clocks tick on their own). */
  const settled = (d) => JSON.stringify(d, (k, v) => (k === 'seconds_remaining' || k === 'now' ? undefined : v));

  async function loadDetail(id) {
    try {
      const d = await api('incidents/' + encodeURIComponent(id));
      // Re-render only on a real change: the page stays still under the officer's hands.
      if (S.detail && S.detail.id === d.id && settled(S.detail) === settled(d) && $('#incident h1')) return;
      S.detail = d;
    } catch (e) {
      if (e.status === 404) {
        S.detail = null;
        $('#incident').replaceChildren(backLink(), el('p', { class: 'error', role: 'alert' }, t('not_found')));
        return;
      }
      throw e;
    }
    if (S.route.page === 'incident' && S.route.id === id) renderDetail();
  }

  const backLink = () => el('p', {}, el('a', { href: '#/', class: 'back' }, t('back')));

  function section(title, ...body) {
    return el('section', { class: 'card' }, el('h2', {}, title), ...body);
  }

  function table(headers, rows) {
    return el('table', { class: 'kv-table' },
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))));
  }

  const fmtVal = (v) => (v === null || v === undefined ? t('none') : typeof v === 'object' ? JSON.stringify(v) : String(v));

  const STATUS = {
    open: { zh: '未结', en: 'open' }, resolved: { zh: '已结束', en: 'resolved' },
    dismissed: { zh: '误报关闭', en: 'dismissed' }, merged: { zh: '已合并', en: 'merged' },
  };
  const statusLabel = (s) => (STATUS[s] ? STATUS[s][S.lang] : s || '');

  /** A figure as the desk measures it now: durations in minutes (with episodes), or a value. */
  function figureValue(f) {
    if (typeof f.minutes === 'number') {
      const h = f.minutes / 60;
      return `${Math.round(f.minutes)} min (${h.toFixed(h < 10 ? 2 : 1)} h)${f.ongoing ? ' · ' + t('ongoing') : ''}`;
    }
    if (typeof f.value === 'number') return String(f.value);
    if (Array.isArray(f.values) && f.values.length) return f.values.join(', ');
    return fmtVal(f.value);
  }

  function renderDetail() {
    const d = S.detail;
    if (!d) return;
    const root = $('#incident');
    const focused = document.activeElement && document.activeElement.id;
    const reports = Array.isArray(d.reports) ? d.reports : [];
    const op = d.operator || {};
    const asset = d.asset || {};

    const head = el('div', { class: 'inc-head' },
      levelBadge(d.level, d.level_zh),
      el('div', {},
        el('h1', {}, d.title || d.id),
        el('p', { class: 'sub mono' }, d.id)));

    const override = Array.isArray(d.override_level) ? d.override_level : null;
    const facts = el('dl', { class: 'facts' },
      el('dt', {}, t('status')), el('dd', { id: 'inc-status' }, statusLabel(d.status), d.acknowledged ? el('span', { class: 'ack-tag' }, ` ✓ ${t('acknowledged')}`) : null),
      el('dt', {}, t('operator')), el('dd', {}, [opName(op), op.class, opProvince(op, d)].filter(Boolean).join(' · ')),
      el('dt', {}, t('asset')), el('dd', {}, [asset.name || asset.id, asset.kind].filter(Boolean).join(' · ') || t('none')),
      el('dt', {}, t('opened')), el('dd', {}, shortTime(d.opened_at)),
      el('dt', {}, t('alerts')), el('dd', {}, fmtVal(d.alert_count)),
      override ? el('dt', {}, t('regraded')) : null,
      override ? el('dd', { class: 'wide' }, `${LEVELS[levelOf(override[0])].zh} ${LEVELS[levelOf(override[0])].en} — ${override[1] || ''} (${t('computed')}: ${LEVELS[levelOf(d.computed_level)].zh})`) : null);

    const reportRows = reports.map((r) => [
      kindLabel(r.kind) + (r.label && r.label.includes('.') ? ` #${r.label.split('.').pop()}` : ''),
      shortTime(r.deadline),
      isOutstanding(r) ? el('span', { class: 'countdown', dataset: { deadline: r.deadline } })
        : r.filed_at ? el('span', { class: 'countdown stopped' }, `✓ ${t('filed')} ${shortTime(r.filed_at)}`)
          : el('span', { class: 'countdown none' }, r.cancelled ? t('cancelled') : t('none')),
      el('span', {},
        r.filed_at ? [r.filed_by ? `${t('by_who')} ${r.filed_by}` : '', r.channel, r.reference].filter(Boolean).join(' · ') : '',
        r.filed_late ? el('span', { class: 'todo-tag' }, t('late')) : null,
        r.backdated ? el('span', { class: 'todo-tag' }, t('backdated')) : null),
    ]);

    const ev = Array.isArray(d.matched) ? d.matched : [];
    const figures = Array.isArray(d.figures) ? d.figures : [];
    const timers = Array.isArray(d.timers) ? d.timers : [];
    const channels = Array.isArray(d.channels) ? d.channels : [];
    const items = (d.draft && Array.isArray(d.draft.items)) ? d.draft.items : [];
    const timeline = Array.isArray(d.timeline) ? d.timeline : [];
    const recipients = Array.isArray(d.recipients) ? d.recipients : [];

    const left = el('div', { class: 'col' },
      section(t('reports'), reports.length ? table([t('kind'), t('deadline'), t('c_deadline'), t('filing')], reportRows) : el('p', { class: 'muted' }, t('no_clock'))),
      section(t('recipients_channels'),
        el('p', {}, el('span', { class: 'muted' }, t('recipients') + ': '), recipients.length ? recipients.map((x) => el('span', { class: 'recip' }, x.name || x.id)) : t('none')),
        el('ul', { class: 'channels' }, channels.map((c) => el('li', {}, el('span', { class: 'muted' }, (CHANNELS[c.kind] ? CHANNELS[c.kind][S.lang] : c.kind) + ': '), el('span', { class: 'mono' }, c.value))))),
      section(t('evidence'), ev.length ? table([t('indicator'), t('value'), t('threshold'), t('guide_row')],
        ev.map((e) => [el('span', { class: 'mono' }, e.indicator), fmtVal(e.value) + unit(e.unit), '≥ ' + fmtVal(e.threshold) + unit(e.unit),
          el('span', {}, levelBadge(e.level), ' ', (d.guide_rows && d.guide_rows[e.indicator]) || '')]))
        : el('p', { class: 'muted' }, t('no_match'))),
      figures.length ? section(t('figures'), table([t('indicator'), t('value')], figures.map((f) => [el('span', { class: 'mono' }, f.figure || f.indicator || ''), figureValue(f)]))) : null,
      timers.length ? section(t('timers'), table([t('timer'), t('at'), t('c_deadline')], timers.map((x) => [
        [x.kind, x.report].filter(Boolean).join(' · '), shortTime(x.at), el('span', { class: 'countdown small', dataset: { deadline: x.at } })]))) : null,
      section(t('timeline'), timeline.length ? el('ol', { class: 'timeline' }, timeline.map(timelineItem)) : el('p', { class: 'muted' }, t('none'))));

    const draft = section(t('draft'),
      items.length ? el('div', {},
        el('div', { class: 'draft-tools' },
          el('span', { class: 'muted' }, t('draft_help')),
          el('button', { type: 'button', class: 'btn', id: 'copy-all', onclick: (e) => copy(draftText(items), e.currentTarget) }, t('copy_all'))),
        el('ol', { class: 'draft' }, items.map((it, i) => el('li', { class: it.to_complete ? 'draft-item todo' : 'draft-item', id: `draft-${it.item || i + 1}` },
          el('div', { class: 'draft-head' },
            el('strong', {}, itemTitle(it, i)),
            it.to_complete ? el('span', { class: 'todo-tag' }, `✎ ${t('to_complete')}`) : null,
            el('button', { type: 'button', class: 'btn small copy', id: `copy-${it.item || i + 1}`, 'aria-label': `${t('copy')} ${it.item || i + 1}`, onclick: (e) => copy(itemText(it, i), e.currentTarget) }, t('copy'))),
          el('p', { class: 'draft-content' }, it.content || ''))))) : el('p', { class: 'muted' }, t('none')));

    root.replaceChildren(
      backLink(), head, actionBar(d), facts,
      el('div', { class: 'cols' }, left, el('div', { class: 'col' }, draft)));
    if (focused) { const f = document.getElementById(focused); if (f) f.focus(); }
    tick();
  }

  const unit = (u) => (u && u !== 'finding' && u !== 'count' ? ' ' + u : '');

  function timelineItem(e) {
    const what = e.type || e.command || '';
    const extra = [e.report_kind && kindLabel(e.report_kind), e.level && `${LEVELS[levelOf(e.level)].zh} ${LEVELS[levelOf(e.level)].en}`, e.detail]
      .filter(Boolean).join(' · ');
    return el('li', { dataset: { type: what } },
      el('span', { class: 'mono when' }, shortTime(e.at)),
      el('strong', {}, what),
      e.by ? el('span', { class: 'by' }, ` ${t('by_who')} ${e.by}${e.via ? ` (${t('via')} ${e.via})` : ''}`) : null,
      e.backdated ? el('span', { class: 'todo-tag' }, `${t('backdated')} (${t('received')} ${shortTime(e.received_at)})`) : null,
      extra ? el('span', { class: 'sub' }, extra) : null);
  }

  /** Item titles as the Measures number them: （一） … （八）, unless the title already does. */
  const ZH_NUM = ['一', '二', '三', '四', '五', '六', '七', '八', '九', '十'];
  const itemTitle = (it, i) => {
    const n = Number(it.item) || i + 1;
    const title = it.title || '';
    return /^[（(]/.test(title) ? title : `（${ZH_NUM[n - 1] || n}）${title}`;
  };
  const itemText = (it, i) => `${itemTitle(it, i)}\n${it.content || ''}`.trim();
  const draftText = (items) => items.map((it, i) => itemText(it, i)).join('\n\n');

  // ---------------------------------------------------------------- copy
  /** Clipboard API where the page is a secure context (https, or the loopback default); else the
   * old execCommand path; else the text is shown selected for Ctrl+C. */
  async function copy(text, button) {
    let how = null;
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); how = 'clipboard'; } catch (_) { /* try the fallback */ }
    }
    if (!how) {
      const ta = $('#copy-fallback');
      ta.value = text;
      ta.focus();
      ta.select();
      try { if (document.execCommand('copy')) how = 'fallback'; } catch (_) { /* manual below */ }
      if (button) button.focus();
    }
    if (!how) {
      how = 'manual';
      openDialog(t('copy'), [el('p', {}, t('copy_manual')), el('textarea', { class: 'manual-copy', rows: 10, readonly: true, id: 'manual-copy' }, text)], null);
      const m = $('#manual-copy');
      m.focus();
      m.select();
    }
    if (button) {
      button.dataset.copied = how;
      const orig = button.dataset.label || button.textContent;
      button.dataset.label = orig;
      button.textContent = how === 'clipboard' ? t('copied') : how === 'fallback' ? t('copied_fallback') : orig;
      setTimeout(() => { button.textContent = orig; }, 2000);
    }
    return how;
  }

  // ---------------------------------------------------------------- actions
  function actionBar(d) {
    const can = S.me ? S.me.commands : [];
    if (!can.length) return el('p', { class: 'muted viewer-note' }, t('viewer_note'));
    if (S.me && !S.me.canWrite) return el('p', { class: 'error viewer-note' }, t('no_signing_key'));
    const open = !d.status || d.status === 'open';
    const unfiled = (d.reports || []).filter(isOutstanding);
    const b = (cmd, label, onclick, primary) => (can.includes(cmd) ? el('button', { type: 'button', id: 'act-' + cmd, class: primary ? 'btn primary' : 'btn', dataset: { action: cmd }, onclick }, label) : null);
    return el('div', { class: 'actions', role: 'group', 'aria-label': t('actions') },
      unfiled.length ? b('report_filed', t('a_file'), () => fileDialog(d, unfiled), true) : null,
      open && !d.acknowledged ? b('ack', t('a_ack'), () => ackDialog(d)) : null,
      b('follow_up', t('a_follow_up'), () => simpleDialog(d, 'follow_up', t('a_follow_up'), t('q_follow_up', d.id), ['reason'])),
      open ? b('resolve', t('a_resolve'), () => simpleDialog(d, 'resolve', t('a_resolve'), t('q_resolve', d.id), [])) : null,
      open ? b('dismiss', t('a_dismiss'), () => simpleDialog(d, 'dismiss', t('a_dismiss'), t('q_dismiss', d.id), ['reason'])) : null,
      open ? b('regrade', t('a_regrade'), () => regradeDialog(d)) : null,
      open ? b('merge', t('a_merge'), () => simpleDialog(d, 'merge', t('a_merge'), t('q_merge', d.id), ['into'])) : null);
  }

  let dialogSubmit = null;
  function openDialog(title, body, onSubmit) {
    const dlg = $('#dlg');
    $('#dlg-title').textContent = title;
    $('#dlg-body').replaceChildren(...body);
    $('#dlg-error').textContent = '';
    $('#dlg-ok').hidden = !onSubmit;
    $('#dlg-ok').disabled = false;
    dialogSubmit = onSubmit;
    if (typeof dlg.showModal === 'function') dlg.showModal(); else dlg.setAttribute('open', '');
    const first = dlg.querySelector('#dlg-body input, #dlg-body select, #dlg-body textarea') || $('#dlg-ok');
    if (first) first.focus();
  }
  function closeDialog() {
    const dlg = $('#dlg');
    if (dlg.open) { if (typeof dlg.close === 'function') dlg.close(); else dlg.removeAttribute('open'); }
  }

  const field = (name, label, input) => el('label', { class: 'field' }, el('span', {}, label), input);
  const textInput = (name, required) => el('input', { type: 'text', name, id: 'in-' + name, required, autocomplete: 'off', spellcheck: 'false' });

  function ackDialog(d) {
    openDialog(t('a_ack'), [el('p', {}, t('q_ack', d.id))], () => send(d, { command: 'ack' }, t('a_ack')));
  }

  function fileDialog(d, unfiled) {
    unfiled.sort((a, b) => Date.parse(a.deadline) - Date.parse(b.deadline));
    const kinds = unfiled.map((r) => r.kind).filter((k, i, a) => k && a.indexOf(k) === i);
    const kindSel = el('select', { name: 'report_kind', id: 'in-report_kind' }, kinds.map((k) => el('option', { value: k }, kindLabel(k))));
    const channels = (d.channels || []).map((c) => c.value).filter(Boolean);
    const chan = el('input', { type: 'text', name: 'channel', id: 'in-channel', list: 'chan-list', required: true, value: '12387', autocomplete: 'off' });
    const list = el('datalist', { id: 'chan-list' }, channels.map((c) => el('option', { value: c })));
    // 补报 (art. 7): items （一）（二） first; Klaxon then makes the rest due as a supplement report.
    const partial = el('input', { type: 'checkbox', name: 'partial', id: 'in-partial' });
    const partialRow = el('label', { class: 'check' }, partial, ' ', t('partial'));
    const syncPartial = () => {
      const ok = kindSel.value === 'initial' || kindSel.value === 'follow_up';
      partialRow.hidden = !ok;
      if (!ok) partial.checked = false;
    };
    kindSel.addEventListener('change', syncPartial);
    syncPartial();
    const note = textInput('note', false);
    openDialog(t('a_file'), [
      el('p', {}, t('q_file', d.id)),
      field('report_kind', t('kind'), kindSel),
      field('channel', t('channel'), el('span', {}, chan, list)),
      field('reference', t('reference'), textInput('reference', true)),
      field('note', t('note'), note),
      partialRow,
    ], () => {
      const ref = $('#in-reference').value.trim();
      const ch = chan.value.trim();
      if (!ch) return fail(t('required', t('channel')));
      if (!ref) return fail(t('required', t('reference')));
      const body = { command: 'report_filed', report_kind: kindSel.value || undefined, channel: ch, reference: ref };
      if (note.value.trim()) body.note = note.value.trim();
      if (partial.checked) body.partial = true;
      return send(d, body, `${t('a_file').replace('…', '')} (${kindLabel(kindSel.value)})`);
    });
  }

  function regradeDialog(d) {
    const sel = el('select', { name: 'level', id: 'in-level' }, Object.keys(LEVELS).map((l) => el('option', { value: l, selected: l === d.level }, `${LEVELS[l].zh} ${LEVELS[l].en}`)));
    openDialog(t('a_regrade'), [el('p', {}, t('q_regrade', d.id)), field('level', t('level'), sel), field('reason', t('reason'), textInput('reason', true))], () => {
      const reason = $('#in-reason').value.trim();
      if (!reason) return fail(t('required', t('reason')));
      return send(d, { command: 'regrade', level: sel.value, reason }, t('a_regrade').replace('…', ''));
    });
  }

  function simpleDialog(d, command, title, question, fields) {
    openDialog(title, [el('p', {}, question), ...fields.map((f) => field(f, t(f), textInput(f, true)))], () => {
      const body = { command };
      for (const f of fields) {
        const v = $('#in-' + f).value.trim();
        if (!v) return fail(t('required', t(f)));
        body[f] = v;
      }
      return send(d, body, title.replace('…', ''));
    });
  }

  function fail(msg) {
    $('#dlg-error').textContent = msg;
    return Promise.resolve(false);
  }

  async function send(d, body, label) {
    $('#dlg-ok').disabled = true;
    try {
      await api(`incidents/${encodeURIComponent(d.id)}/commands`, { method: 'POST', body });
    } catch (e) {
      $('#dlg-ok').disabled = false;
      return fail(t('refused') + (e.status ? `(${e.status}) ` : '') + e.message);
    }
    S.pending.set(d.id, label);
    closeDialog();
    toast(t('done', label, d.id, S.me ? S.me.name : '?'));
    S.detailStale = true;
    refreshSoon(d.id);
    return true;
  }

  let toastTimer = 0;
  function toast(msg, isError) {
    const el0 = $('#toast');
    el0.textContent = msg;
    el0.className = isError ? 'toast error' : 'toast';
    el0.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el0.hidden = true; }, isError ? 12000 : 6000);
  }

  // ---------------------------------------------------------------- routing and chrome
  function show(which) {
    for (const id of ['signin', 'board', 'incident']) $('#' + id).hidden = id !== which;
  }

  function parseRoute() {
    const h = location.hash || '#/';
    const m = /^#\/incident\/(.+)$/.exec(h);
    return m ? { page: 'incident', id: decodeURIComponent(m[1]) } : { page: 'board' };
  }

  async function route() {
    S.route = parseRoute();
    if (!S.token || !S.me) { show('signin'); return; }
    if (S.route.page === 'incident') {
      show('incident');
      if (!S.detail || S.detail.id !== S.route.id) $('#incident').replaceChildren(backLink());
      S.detail = S.detail && S.detail.id === S.route.id ? S.detail : null;
      try { await loadDetail(S.route.id); } catch (e) { if (e.status !== 401) toast(t('desk_unreachable') + e.message, true); }
      const h1 = $('#incident h1');
      if (h1) { h1.tabIndex = -1; h1.focus(); }
    } else {
      show('board');
      renderBoard();
      refreshSoon();
    }
  }

  function renderHeader() {
    document.documentElement.lang = S.lang === 'zh' ? 'zh-CN' : 'en';
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    for (const e of document.querySelectorAll('[data-i18n-title]')) e.title = t(e.dataset.i18nTitle);
    document.title = `Klaxon · ${t('board_title')}`;
    $('#lang').textContent = S.lang === 'zh' ? 'English' : '中文';
    $('#lang').setAttribute('lang', S.lang === 'zh' ? 'en' : 'zh');
    const who = $('#who');
    if (S.me) {
      const r = ROLES[S.me.role] || { zh: S.me.role, en: S.me.role };
      who.replaceChildren(el('strong', { id: 'who-name' }, S.me.name), ' · ', el('span', { id: 'who-role', dataset: { role: S.me.role } }, S.lang === 'zh' ? r.zh : r.en));
      who.hidden = false;
      $('#signout').hidden = false;
    } else {
      who.hidden = true;
      $('#signout').hidden = true;
    }
    if (S.streamUp !== null && S.token) setConn(S.streamUp);
  }

  function rerender() {
    renderHeader();
    if (S.route.page === 'board') renderBoard(); else renderDetail();
  }

  async function start() {
    renderHeader();
    $('#lang').addEventListener('click', () => {
      S.lang = S.lang === 'zh' ? 'en' : 'zh';
      localStorage.setItem(LANG_KEY, S.lang);
      rerender();
    });
    $('#signout').addEventListener('click', () => signOut(''));
    $('#signin-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const tok = $('#token').value;
      $('#signin-error').textContent = '';
      try {
        await signIn(tok);
      } catch (err) {
        if (err.status !== 401) $('#signin-error').textContent = t('desk_unreachable') + err.message;
        return;
      }
      $('#token').value = '';
      afterSignIn();
    });
    for (const id of ['#f-level', '#f-operator', '#f-province']) $(id).addEventListener('change', renderBoard);
    $('#f-status').addEventListener('change', () => refreshSoon());
    $('#dlg-cancel').addEventListener('click', closeDialog);
    $('#dlg-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      if (dialogSubmit) await dialogSubmit(); else closeDialog();
    });
    window.addEventListener('hashchange', route);
    document.addEventListener('keydown', (e) => {
      // "/" jumps to the filters, as in most consoles; not while typing.
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test((e.target && e.target.tagName) || '');
      if (e.key === '/' && !typing && S.route.page === 'board' && !$('#board').hidden) { e.preventDefault(); $('#f-level').focus(); }
    });
    setInterval(tick, 1000);

    if (S.token) {
      try { await signIn(S.token); } catch (e) { if (e.status !== 401) signOut(t('desk_unreachable') + e.message); return; }
      afterSignIn();
    } else {
      show('signin');
      $('#token').focus();
    }
  }

  function afterSignIn() {
    renderHeader();
    setConn(false);
    runStream();
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
