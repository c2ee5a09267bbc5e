"""Japanese messages (日本語). Keys and placeholders as in ``en.py``.

Flag names (SYN, ACK, FIN, RST), ISN, MSS, SACK and Zeek's field names stay in
Latin letters, as Japanese TCP/IP textbooks write them.
"""

NAME = "日本語"


def plural(count: int) -> str:
    return "other"


MESSAGES: dict[str, str] = {
    # -- connection table ----------------------------------------------------
    "table.originator": "発信側",
    "table.responder": "応答側",
    "table.handshake": "ハンドシェイク",
    "table.teardown": "切断",
    "table.duration": "継続時間",
    "table.orig_bytes": "発信側バイト",
    "table.resp_bytes": "応答側バイト",
    "table.hs_time": "応答時間",
    "table.state": "状態",
    "table.verdict": "判定",
    "table.reject_time": "RST {time}",
    "table.empty": "TCP コネクションは見つかりませんでした",
    "handshake.complete": "完了",
    "handshake.simultaneous_open": "同時オープン",
    "handshake.no_reply": "応答なし",
    "handshake.rejected": "拒否",
    "handshake.incomplete": "未完了",
    "handshake.not_seen": "未観測",
    "teardown.fin": "FIN で終了",
    "teardown.half_closed": "ハーフクローズ",
    "teardown.reset_by_orig": "発信側がリセット",
    "teardown.reset_by_resp": "応答側がリセット",
    "teardown.open": "接続中",
    "teardown.idle_timeout": "アイドルで打ち切り",
    # -- labels ------------------------------------------------------------
    "role.originator": "発信側",
    "role.responder": "応答側",
    "role.client": "クライアント",
    "role.server": "サーバー",
    "title": "コネクション {number}（{uid}）",
    "column.time": "経過",
    "column.delta": "間隔",
    "phase.handshake": "ハンドシェイク",
    "phase.transfer": "データ転送",
    "phase.teardown": "切断",
    "phase.closed": "終了",
    "bracket.rtt": "RTT {time}",
    "bracket.reject": "RST まで {time}",
    "flags.none": "フラグなし",
    "empty": "（保存されたセグメントはありません）",
    "list.separator": "、",
    "fold.summary": "… {span}間に {segments}: {details} …",
    "count.segments.one": "{n} セグメント",
    "count.segments.other": "{n} セグメント",
    "footer.verdict": "判定: {verdict}",
    "footer.state": "conn_state {state}、history {history}",
    "footer.dropped.one": "… 以降の {n} セグメントは保存していません（上限）",
    "footer.dropped.other": "… 以降の {n} セグメントは保存していません（上限）",
    "footer.midstream": (
        "キャプチャはコネクションの途中から始まっています。シーケンス番号は"
        "最初に見えたセグメントから数え、ウィンドウはスケール前のヘッダ値です。"
    ),
    "footer.roles_inferred": (
        "SYN がキャプチャされていないため、どちらがクライアントかはポート番号"
        "からの推測です。"
    ),
    # -- analysis marks ----------------------------------------------------
    "mark.retransmission": "再送",
    "mark.fast_retransmission": "高速再送",
    "mark.spurious_retransmission": "不要な再送",
    "mark.out_of_order": "順序入れ替わり",
    "mark.previous_segment_not_captured": "前のセグメントが未取得",
    "mark.duplicate_ack": "重複 ACK",
    "mark.zero_window": "ゼロウィンドウ",
    "mark.window_full": "ウィンドウ満杯",
    "mark.zero_window_probe": "ゼロウィンドウプローブ",
    "mark.keep_alive": "キープアライブ",
    "mark.window_update": "ウィンドウ更新",
    "mark.bad_checksum": "チェックサム不正",
    "mark.syn_inside_the_connection": "コネクション内の SYN",
    "mark.port_numbers_reused": "ポート番号の再利用",
    "mark.duplicate_capture": "重複キャプチャ",
    "mark.acked_unseen_segment": "未取得データへの ACK",
    "count.mark.retransmission.one": "再送 {n} 件",
    "count.mark.retransmission.other": "再送 {n} 件",
    "count.mark.fast_retransmission.one": "高速再送 {n} 件",
    "count.mark.fast_retransmission.other": "高速再送 {n} 件",
    "count.mark.spurious_retransmission.one": "不要な再送 {n} 件",
    "count.mark.spurious_retransmission.other": "不要な再送 {n} 件",
    "count.mark.out_of_order.one": "順序入れ替わり {n} 件",
    "count.mark.out_of_order.other": "順序入れ替わり {n} 件",
    "count.mark.previous_segment_not_captured.one": "欠落 {n} 件",
    "count.mark.previous_segment_not_captured.other": "欠落 {n} 件",
    "count.mark.duplicate_ack.one": "重複 ACK {n} 件",
    "count.mark.duplicate_ack.other": "重複 ACK {n} 件",
    "count.mark.zero_window.one": "ゼロウィンドウ {n} 件",
    "count.mark.zero_window.other": "ゼロウィンドウ {n} 件",
    "count.mark.window_full.one": "ウィンドウ満杯 {n} 件",
    "count.mark.window_full.other": "ウィンドウ満杯 {n} 件",
    "count.mark.zero_window_probe.one": "ゼロウィンドウプローブ {n} 件",
    "count.mark.zero_window_probe.other": "ゼロウィンドウプローブ {n} 件",
    "count.mark.keep_alive.one": "キープアライブ {n} 件",
    "count.mark.keep_alive.other": "キープアライブ {n} 件",
    "count.mark.window_update.one": "ウィンドウ更新 {n} 件",
    "count.mark.window_update.other": "ウィンドウ更新 {n} 件",
    "count.mark.bad_checksum.one": "チェックサム不正 {n} 件",
    "count.mark.bad_checksum.other": "チェックサム不正 {n} 件",
    "count.mark.syn_inside_the_connection.one": "迷い込んだ SYN {n} 件",
    "count.mark.syn_inside_the_connection.other": "迷い込んだ SYN {n} 件",
    "count.mark.port_numbers_reused.one": "ポート再利用 {n} 件",
    "count.mark.port_numbers_reused.other": "ポート再利用 {n} 件",
    "count.mark.duplicate_capture.one": "重複キャプチャ {n} 件",
    "count.mark.duplicate_capture.other": "重複キャプチャ {n} 件",
    "count.mark.acked_unseen_segment.one": "未取得データへの ACK {n} 件",
    "count.mark.acked_unseen_segment.other": "未取得データへの ACK {n} 件",
    # -- SYN options -------------------------------------------------------
    "option.mss": "MSS {mss}（受け取れる最大のセグメント）",
    "option.wscale": "ウィンドウスケール {shift}（{factor} 倍）",
    "option.sack": "SACK（選択的確認応答）",
    "option.timestamps": "タイムスタンプ",
    "option.fast_open": "TCP Fast Open のクッキー",
    # -- phase introductions -----------------------------------------------
    "explain.phase.handshake": (
        "3ウェイハンドシェイク: 双方が初期シーケンス番号（ISN）を選んで相手が"
        "それを確認応答し、SYN で互いのオプションを伝えます。"
    ),
    "explain.phase.transfer": (
        "データ転送: すべてのバイトにシーケンス番号があり、ACK はどのバイトまで"
        "届いたかを、ウィンドウはあと何バイト送ってよいかを示します。"
    ),
    "explain.phase.teardown": (
        "切断: 各方向は FIN で別々に閉じ、相手がそれを確認応答します。RST は"
        "両方向を一度に終わらせます。"
    ),
    # -- one note per segment ----------------------------------------------
    "explain.syn": (
        "{side}が接続を要求します。ISN は {isn} で、表示の番号はここから数える"
        "ので SYN は seq 0 です。提示するオプション: {options}。"
    ),
    "explain.syn_no_options": (
        "{side}が接続を要求します。ISN は {isn} で、表示の番号はここから数えます。"
        "オプションがないので既定値（MSS 536 バイト、ウィンドウスケールなし、"
        "SACK なし）になります。"
    ),
    "explain.syn_again": (
        "{side}が同じ ISN で SYN を送り直します。SYN-ACK が時間内に返らなかった"
        "ため、SYN か応答が失われたとみなしています。"
    ),
    "explain.syn_simultaneous": (
        "{side}は SYN-ACK ではなく自分の SYN を送ります。双方が同時に接続を"
        "開いています（同時オープン）。ISN は {isn} です。"
    ),
    "explain.synack": (
        "{side}が接続を受け入れます。自分の ISN は {isn} です。ACK 1（生の値 "
        "{ack}）は{peer}の ISN + 1 です。SYN はシーケンス番号を 1 つ使うからです。"
        "提示するオプション: {options}。"
    ),
    "explain.synack_no_options": (
        "{side}が接続を受け入れます。自分の ISN は {isn} です。ACK 1（生の値 "
        "{ack}）は{peer}の ISN + 1 です。SYN はシーケンス番号を 1 つ使うからです。"
        "オプションはありません。"
    ),
    "explain.synack_again": (
        "{side}が SYN-ACK を送り直します。{peer}の ACK が時間内に届きませんでした。"
    ),
    "explain.handshake_ack": (
        "{side}が SYN-ACK を確認応答します。ACK 1 は{peer}の ISN + 1 です。"
        "ハンドシェイクが完了し、双方向にデータを送れます。"
    ),
    "explain.data": (
        "{side}が {length} バイトを送ります。自分のストリームの {first} から "
        "{last} バイト目です。"
    ),
    "explain.payload": "データの先頭: 「{preview}」",
    "explain.ack_data": "{side}が {upto} バイト目までのすべてを確認応答します。",
    "explain.ack_fin": (
        "{side}が ACK {ack} で{peer}の FIN を確認応答します。FIN は最後のバイト "
        "{upto} の次のシーケンス番号を 1 つ使います。"
    ),
    "explain.fin_first": (
        "{side}にはもう送るデータがありません（FIN）。{side}から{peer}への方向が"
        "閉じます。{peer}はまだ送信でき、{side}はまだ受信します。"
    ),
    "explain.fin_second": (
        "{side}も自分の方向を閉じます。この FIN が確認応答されると、両方向とも"
        "閉じます。"
    ),
    "explain.rst_refused": (
        "{side}が RST で接続を拒否します。ポート {port} で接続を受け付けている"
        "ものがないか、ファイアウォールが代わりに応答しました。"
    ),
    "explain.rst_abort": (
        "{side}が RST で接続を中断します。両方向が一度に終わり、送信途中の"
        "データは捨てられ、RST には誰も確認応答しません。"
    ),
    "explain.rst_late": (
        "両方の FIN の後の RST です。コネクションはすでに閉じており、遅れて"
        "届いたセグメントに応えているだけです。"
    ),
    "explain.retransmission": (
        "再送: {side}が {first} から {last} バイト目を送り直します（最初の送信は "
        "{when}）。時間内に ACK が来なかったため、データか ACK が失われたと"
        "みなしています。"
    ),
    "explain.retransmission_unseen": (
        "再送: {side}が {first} から {last} バイト目を送り直します。時間内に ACK が"
        "来なかったため、データか ACK が失われたとみなしています。"
    ),
    "explain.fast_retransmission": (
        "高速再送: 重複 ACK によって {first} バイト目からが届いていないと"
        "わかったので、{side}はタイマーを待たずに送り直します。"
    ),
    "explain.spurious_retransmission": (
        "不要な再送: {peer}はこのバイトをすでに確認応答していたので、この"
        "コピーは不要でした。ACK が届く前にタイマーが切れています。"
    ),
    "explain.out_of_order": (
        "順序入れ替わり: このバイトは、すでに見えたデータより前の穴を埋めます。"
        "送り直しではなく、途中で順序が入れ替わって遅れて届いたものです。"
    ),
    "explain.previous_segment_not_captured": (
        "前のセグメントが未取得: シーケンス番号が飛んでいます。{first} バイト目"
        "より前のバイトは送られましたが、キャプチャにありません。"
    ),
    "explain.duplicate_ack": (
        "重複 ACK: {side}が ACK {ack} を繰り返します。後続のデータは届きましたが "
        "{ack} バイト目がまだ欠けているので、もう一度要求しています。"
    ),
    "explain.zero_window": (
        "ゼロウィンドウ: {side}の受信バッファがいっぱいです。{peer}はウィンドウが"
        "再び開くまで送信を止めなければなりません。"
    ),
    "explain.window_full": (
        "ウィンドウ満杯: このセグメントで{peer}が通知したウィンドウを使い切った"
        "ので、{side}は ACK を待ってから次を送ります。"
    ),
    "explain.zero_window_probe": (
        "ゼロウィンドウプローブ: {side}が 1 バイトを送り、{peer}のウィンドウが"
        "開いたかを確かめます。"
    ),
    "explain.keep_alive": (
        "キープアライブ: 次のシーケンス番号より 1 小さいプローブです。{peer}が"
        "まだいるかを確かめ、{peer}は ACK で答えます。"
    ),
    "explain.window_update": (
        "ウィンドウ更新: ACK 番号は同じままで、ウィンドウが {window} バイトに"
        "変わりました。{peer}にあと何バイト送れるかを伝えています。"
    ),
    "explain.bad_checksum": (
        "チェックサム不正: セグメントが壊れているので、受信側は捨てます。"
    ),
    "explain.syn_inside_the_connection": (
        "データを運んだコネクションの中に、新しい ISN の SYN が現れました。"
        "コネクションはやり直しになりません。"
    ),
    "explain.port_numbers_reused": (
        "ポート番号の再利用: 同じアドレスとポートへの新しい SYN が、新しい"
        "コネクションを始めます。"
    ),
    "explain.duplicate_capture": (
        "重複キャプチャ: 同じパケットが 2 回キャプチャされました（たとえば 2 つの"
        "インターフェースで）。送信は 1 回だけです。"
    ),
    "explain.acked_unseen_segment": (
        "未取得データへの ACK: この ACK はキャプチャにないデータを確認応答して"
        "います。{peer}のセグメントは{side}に届きましたが、キャプチャには"
        "残っていません。"
    ),
    # -- verdicts, built from the record's facts ---------------------------
    "verdict.rejected": "サーバーが拒否: SYN に {latency} 後 RST が返りました",
    "verdict.rejected_tries": (
        "サーバーが拒否: SYN に {latency} 後 RST が返りました（SYN {tries} 回）"
    ),
    "verdict.no_reply": "SYN に応答がありません",
    "verdict.no_reply_tries": "応答なし: {span}の間に SYN を {tries} 回送りました",
    "verdict.incomplete_no_synack": (
        "ハンドシェイク未完了: サーバーは SYN に SYN-ACK 以外で応えました"
    ),
    "verdict.incomplete_unacked": (
        "ハンドシェイク未完了: SYN-ACK が確認応答されませんでした"
    ),
    "verdict.prefix.midstream": "途中からのキャプチャ。{sentence}",
    "verdict.prefix.midstream_inferred": (
        "途中からのキャプチャで、役割はポート番号から推測。{sentence}"
    ),
    "verdict.prefix.simultaneous": "同時オープン。{sentence}",
    "verdict.prefix.synack_not_captured": (
        "SYN-ACK はキャプチャされていません。{sentence}"
    ),
    "verdict.only_client_side": (
        "クライアント側だけがキャプチャされています（{size} 送信）。サーバーの"
        "パケットがありません。別の経路を通った可能性があります"
    ),
    "verdict.only_server_side": (
        "サーバー側だけがキャプチャされています（{size} 送信）。クライアントの"
        "パケットがありません。別の経路を通った可能性があります"
    ),
    "verdict.fin": "{size}のやり取りの後、{side}から正常に切断されました",
    "verdict.reset.transfer": (
        "転送中、開始から {into} 後に{side}がリセットしました（{size}をやり取り）"
    ),
    "verdict.reset.before_data": (
        "ハンドシェイクの {into} 後、データの前に{side}がリセットしました"
        "（{size}をやり取り）"
    ),
    "verdict.reset.handshake": (
        "ハンドシェイク中、{into} 後に{side}がリセットしました（{size}をやり取り）"
    ),
    "verdict.half_closed": (
        "ハーフクローズ: {side}は FIN を送りましたが、{peer}は閉じませんでした"
        "（{size}）"
    ),
    "verdict.idle_timeout": "無通信が長すぎるため、{size}の後に追跡を止めました",
    "verdict.open": "キャプチャ終了時点でまだ開いています（{size}をやり取り）",
    "verdict.idle_stopped": (
        "{sentence}。その後 --idle-timeout より長く無通信だったため、追跡を止めました"
    ),
    "verdict.prefix.syn_not_captured": "SYN はキャプチャされていません。{sentence}",
    "verdict.open_evicted": "{size}をやり取りした時点でまだ開いていました",
    "verdict.evicted": (
        "{sentence}。接続テーブルが満杯になったため（--max-connections）、"
        "追跡を途中で止めました"
    ),
    # -- demo and replay ---------------------------------------------------
    "demo.live": (
        "実際のパケット: このマシンのループバックインターフェース上の TCP サーバー"
        "とクライアントを、その場でキャプチャしました。"
    ),
    "demo.synthesised": (
        "これらのパケットは scapy で合成したもので、実際のネットワークから"
        "キャプチャしたものではありません。理由: {reason}"
    ),
    "demo.reason.no_root": "ループバックでのキャプチャには root 権限が必要です。",
    "demo.reason.stack": "ローカルの TCP スタックはこれを任意には起こしません。",
    "demo.reason.requested": "--synthesise で合成が指定されました。",
    "demo.scenario": "シナリオ: {title}",
    "demo.list.live": "root で実行すると実際のループバック通信",
    "demo.list.synthesised": "常に合成",
    "demo.dropped.one": (
        "カーネルがこのキャプチャのパケットを {n} 個落としたため、"
        "タイムラインに欠けがあります。"
    ),
    "demo.dropped.other": (
        "カーネルがこのキャプチャのパケットを {n} 個落としたため、"
        "タイムラインに欠けがあります。"
    ),
    "demo.saved": "キャプチャを {path} に保存しました。",
    # -- demo scenarios ----------------------------------------------------
    "scenario.clean.title": "正常なやり取り",
    "scenario.clean.about": (
        "クライアントが接続してリクエストを送り、"
        "レスポンスを受け取り、双方が FIN で閉じます"
        "。3ウェイハンドシェイク、データとその ACK、"
        "4 セグメントの切断が見られます。"
    ),
    "scenario.refused.title": "拒否されたポート",
    "scenario.refused.about": (
        "何も待ち受けていないポートにクライアント"
        "が接続します。ホストは SYN にすぐ RST で応え"
        "ます。接続は失われたのではなく拒否されま"
        "した。"
    ),
    "scenario.abort.title": "RST による中断",
    "scenario.abort.about": (
        "サーバーはリクエストを読んだ後 SO_LINGER 0 で"
        "ソケットを閉じるので、カーネルは FIN ではな"
        "く RST を送り、両方向が一度に終わります。"
    ),
    "scenario.half_close.title": "ハーフクローズ",
    "scenario.half_close.about": (
        "クライアントはデータを送った後 shutdown() で"
        " FIN を送ります。サーバーは開いている方向で"
        "応答を送ってから自分も閉じます。"
    ),
    "scenario.slow_server.title": "遅いサーバー",
    "scenario.slow_server.about": (
        "サーバーはリクエストをすぐ確認応答します"
        "が、応答はずっと後です。ハンドシェイクは"
        "速く、待ち時間はアプリケーションにありま"
        "す。"
    ),
    "scenario.bulk.title": "大量転送",
    "scenario.bulk.about": (
        "サーバーが大きな応答を送ります。多数のデ"
        "ータセグメントとその確認応答が、件数つき"
        "の要約行に折りたたまれます。"
    ),
    "scenario.loss.title": "損失と再送",
    "scenario.loss.about": (
        "ダウンロードのセグメントが 1 つ失われ、ク"
        "ライアントが重複 ACK を送り、サーバーが送り"
        "直します（高速再送）。次に失われたリクエ"
        "ストが、クライアントのタイマー切れで再送"
        "されます。"
    ),
    "scenario.zero_window.title": "ゼロウィンドウ",
    "scenario.zero_window.about": (
        "サーバーがアップロードの読み出しを止めま"
        "す。ウィンドウがゼロまで縮み、クライアン"
        "トはゼロウィンドウプローブを送り、ウィン"
        "ドウ更新でアップロードが完了します。"
    ),
    "scenario.simultaneous_open.title": "同時オープン",
    "scenario.simultaneous_open.about": (
        "2 つのピアが同じ瞬間に互いへ SYN を送ります"
        "。それぞれが相手の SYN に応え、1 つのコネク"
        "ションになります。"
    ),
    "scenario.no_reply.title": "応答なし",
    "scenario.no_reply.about": (
        "ファイアウォールが SYN を黙って捨てます。ク"
        "ライアントは 1、2、4 秒後に再試行しますが、"
        "応答はありません。"
    ),
}
