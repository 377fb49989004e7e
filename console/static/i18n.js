// Japanese first, English on request: every label and message of the console, and the choice
// kept in localStorage. Elements with data-i18n get their text from here (textContent only).
"use strict";
const I18n = (() => {
  const strings = {
    ja: {
      console_title: "callbridge コンソール", user_name: "ユーザー名", password: "パスワード",
      sign_in: "サインイン", sign_out: "サインアウト", login_failed: "ユーザー名またはパスワードが違います",
      too_many_attempts: "失敗が続いたため、しばらく待ってから再試行してください",
      nav_calls: "通話一覧", nav_failures: "失敗・デッドレター", nav_rules: "ルール", nav_overview: "概要",
      phone: "電話番号", call_id: "通話ID", from: "開始日時", to: "終了日時", event: "イベント",
      rule: "ルール", outcome: "結果", any: "すべて", search: "検索", next_page: "次のページ",
      first_page: "最初のページ", no_calls: "該当する通話はありません", first_at: "最初のイベント",
      last_at: "最後のイベント", events: "イベント数", tel: "発信者番号",
      outcome_ok: "成功", outcome_failed: "失敗", outcome_dead: "デッドレター", outcome_unknown: "不明",
      outcome_running: "処理中", call_detail: "通話詳細", back: "一覧へ戻る", timeline: "タイムライン",
      variables: "変数", notes: "メモ", attempt: "試行", state: "状態", gate: "条件", status: "ステータス",
      latency: "応答時間", request: "リクエスト", response: "レスポンス本文", extracted: "抽出した変数", error: "エラー",
      received_at: "受信日時", since: "この日時以降", replay: "再実行", replay_selected: "選択したものを再実行",
      replay_all_since: "この日時以降をすべて再実行", replay_results: "再実行の結果", no_failures: "失敗はありません",
      rules_in_force: "適用中のルール", validation: "ディスク上のファイルの検証", valid: "問題ありません",
      invalid: "エラーがあります", reload: "再読み込み (SIGHUP と同じ)", reloaded: "再読み込みしました",
      reload_rejected: "エラーがあるため、適用中のルールを維持しました", order: "順序", action: "アクション",
      memo: "メモ", overview: "概要", events_per_minute: "1分あたりのイベント数", actions_by_outcome: "結果別のアクション数",
      queue_depth: "キューの深さ", last_hour: "直近1時間", last_day: "直近24時間", forbidden: "この操作の権限がありません",
      role_viewer: "閲覧者", role_operator: "オペレーター", error_generic: "エラーが発生しました", refresh: "更新",
      matched: "一致", not_matched: "不一致", count: "件数", lang: "English",
      nav_kintone: "kintone", directory: "顧客ディレクトリ", directory_unavailable: "kintone.directory は設定されていません",
      sync_now: "今すぐ同期", sync_requested: "同期を要求しました", oauth: "OAuth 認可", connection: "接続名", authorize: "認可ページへ",
      connections: "接続", kintone_unavailable: "kintone は設定されていません", auth_kind: "認証方式", in_flight: "処理中のリクエスト",
      requests_today: "本日のリクエスト数 (アプリごと / 1日の上限)", failures: "失敗 (種類別)", app: "アプリ",
      no_requests_yet: "まだリクエストはありません", oauth_authorized: "認可済み", oauth_not_authorized: "未認可",
      auth_api_token: "API トークン", auth_password: "パスワード認証", auth_oauth: "OAuth",
      counted_per_node: "リクエスト数はこのノードのメモリ上の値です (起動時から、UTC 0時 = 日本時間 9時に日付が変わります)",
      customers: "顧客数", last_sync: "最終同期", duration: "所要時間", sync_running: "同期中", fetched: "取得したレコード",
      sync_counts: "全件 / 差分 同期回数", sync_failures: "同期の失敗回数", last_error: "最後のエラー", never: "未実施",
      yes: "はい", no: "いいえ",
      nav_chains: "エスカレーション", chains_unavailable: "エスカレーションは設定されていません", chain: "チェーン",
      callflow: "コールフロー", guidance: "ガイダンス", started: "開始日時", loops: "ループ回数", attempts: "架電数",
      key_pressed: "応答ボタン", reason: "結果と理由", abort: "中止", start_chain: "手動で開始", parameters: "パラメータ (KEY=value)",
      start: "開始", chain_started: "開始しました", contacts: "連絡先", message: "メッセージ", keys: "応答ボタン",
      more_parameters: "その他のパラメータ (KEY=value を1行に1つ)", reaction_terminate: "終了", reaction_continue: "継続", reaction_leave: "離脱", contact: "連絡先", result: "結果", loop: "ループ",
      result_succeeded: "成功", result_ignored: "無視", result_missed: "不在", result_failed: "失敗", result_aborted: "中止",
      result_running: "実行中", result_calling: "通話中",
      simulate: "シミュレーション", answered: "応答済み", extra_vars: "追加の変数 (KEY=value を1行に1つ)",
      dry_run: "試す (送信しない)", send_requests: "実際に送信する", runs: "実行する", skipped: "実行しない",
      no_rules: "このイベントのルールはありません", sent: "送信しました", not_sent: "送信していません (ドライラン)",
    },
    en: {
      console_title: "callbridge console", user_name: "User name", password: "Password",
      sign_in: "Sign in", sign_out: "Sign out", login_failed: "Wrong user name or password",
      too_many_attempts: "Too many failed sign-ins; wait before trying again",
      nav_calls: "Calls", nav_failures: "Failures and dead letters", nav_rules: "Rules", nav_overview: "Overview",
      phone: "Phone number", call_id: "Call ID", from: "From", to: "To", event: "Event",
      rule: "Rule", outcome: "Outcome", any: "Any", search: "Search", next_page: "Next page",
      first_page: "First page", no_calls: "No calls match", first_at: "First event",
      last_at: "Last event", events: "Events", tel: "Caller",
      outcome_ok: "OK", outcome_failed: "Failed", outcome_dead: "Dead letter", outcome_unknown: "Unknown",
      outcome_running: "Running", call_detail: "Call", back: "Back to the list", timeline: "Timeline",
      variables: "Variables", notes: "Notes", attempt: "Attempt", state: "State", gate: "Gate", status: "Status",
      latency: "Latency", request: "Request", response: "Response body", extracted: "Extracted variables", error: "Error",
      received_at: "Received", since: "Since", replay: "Replay", replay_selected: "Replay selected",
      replay_all_since: "Replay all since this time", replay_results: "Replay results", no_failures: "No failures",
      rules_in_force: "Rules in force", validation: "Validation of the file on disk", valid: "No errors",
      invalid: "Errors found", reload: "Reload (same as SIGHUP)", reloaded: "Reloaded",
      reload_rejected: "The file has errors; the rules in force stay", order: "Order", action: "Action",
      memo: "Memo", overview: "Overview", events_per_minute: "Events per minute", actions_by_outcome: "Actions by outcome",
      queue_depth: "Queue depth", last_hour: "Last hour", last_day: "Last 24 hours", forbidden: "You may not do this",
      role_viewer: "viewer", role_operator: "operator", error_generic: "Something went wrong", refresh: "Refresh",
      matched: "matched", not_matched: "not matched", count: "Count", lang: "日本語",
      nav_kintone: "kintone", directory: "Customer directory", directory_unavailable: "kintone.directory is not configured",
      sync_now: "Sync now", sync_requested: "Sync requested", oauth: "OAuth authorization", connection: "Connection", authorize: "Authorize",
      connections: "Connections", kintone_unavailable: "kintone is not configured", auth_kind: "Authentication", in_flight: "Requests in flight",
      requests_today: "Requests today (per app / daily limit)", failures: "Failures (by class)", app: "App",
      no_requests_yet: "No requests yet", oauth_authorized: "authorized", oauth_not_authorized: "not authorized",
      auth_api_token: "API token", auth_password: "Password", auth_oauth: "OAuth",
      counted_per_node: "Counts are this node's, in memory since it started (the day turns at 00:00 UTC, 09:00 JST)",
      customers: "Customers", last_sync: "Last sync", duration: "Duration", sync_running: "Sync running", fetched: "Records read",
      sync_counts: "Full / incremental syncs", sync_failures: "Failed syncs", last_error: "Last error", never: "never",
      yes: "yes", no: "no",
      nav_chains: "Escalation", chains_unavailable: "Escalation is not configured", chain: "Chain",
      callflow: "Call flow", guidance: "Guidance", started: "Started", loops: "Loops", attempts: "Calls",
      key_pressed: "Key pressed", reason: "Result and reason", abort: "Abort", start_chain: "Start by hand", parameters: "Parameters (KEY=value)",
      start: "Start", chain_started: "Started", contacts: "contacts", message: "Message", keys: "Keys",
      more_parameters: "More parameters (KEY=value, one a line)", reaction_terminate: "terminates", reaction_continue: "continues", reaction_leave: "leaves", contact: "Contact", result: "Result", loop: "Loop",
      result_succeeded: "succeeded", result_ignored: "ignored", result_missed: "missed", result_failed: "failed", result_aborted: "aborted",
      result_running: "running", result_calling: "calling",
      simulate: "Simulate", answered: "Answered", extra_vars: "Extra variables (KEY=value, one a line)",
      dry_run: "Try (dry run)", send_requests: "Send for real", runs: "runs", skipped: "skipped",
      no_rules: "No rules for this event", sent: "Sent", not_sent: "Not sent (dry run)",
    },
  };
  let lang = localStorage.getItem("callbridge.lang") === "en" ? "en" : "ja";
  const t = (key) => strings[lang][key] || strings.ja[key] || key;
  const apply = (root = document) => {
    document.documentElement.lang = lang;
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    const toggle = document.getElementById("lang-toggle");
    if (toggle) toggle.textContent = t("lang");
  };
  const toggle = () => {
    lang = lang === "ja" ? "en" : "ja";
    localStorage.setItem("callbridge.lang", lang);
    apply();
    document.dispatchEvent(new Event("languagechange"));
  };
  return { t, apply, toggle, get lang() { return lang; } };
})();
