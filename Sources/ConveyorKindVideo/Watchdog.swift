/// The process between a worker and its ffmpeg (measured in docs/STACK-NOTES: ffmpeg ignores a
/// parent-death signal and a closed stdin, so neither stops it when its worker is SIGKILLed).
///
/// `sh -c WATCHDOG watchdog TEMP ffmpeg ARGS…` starts ffmpeg with its stdin a FIFO the watchdog holds,
/// then waits for it. Its own stdin is a pipe from the worker. A stop — SIGTERM to the watchdog (the
/// worker cancels or times the render out), or the end of its stdin (the worker died: the kernel closed
/// the pipe) — runs the stop sequence: `q` on ffmpeg's stdin, SIGTERM after `GRACE` tenths of a second,
/// SIGKILL after as many again, then the temporary output is removed and the watchdog exits 200. Left
/// alone it exits with ffmpeg's status.
enum Watchdog {
    static func script(graceTenths: Int) -> String {
        """
        tmp=$1; shift
        exec 5<&0
        ctl="$tmp.ctl"
        rm -f "$ctl"; mkfifo -m 600 "$ctl" || exit 70
        "$@" < "$ctl" &
        f=$!
        trap '' PIPE
        exec 4> "$ctl"
        rm -f "$ctl"
        alive() { [ -e "/proc/$f" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$f/status" 2>/dev/null; }
        pause() { i=0; while alive && [ $i -lt \(graceTenths) ]; do sleep 0.1; i=$((i+1)); done; }
        stop() {
          trap '' TERM INT
          kill $r 2>/dev/null
          printf q >&4 2>/dev/null
          pause
          alive && kill -TERM $f 2>/dev/null && pause
          alive && kill -KILL $f 2>/dev/null
          wait $f 2>/dev/null
          rm -f "$tmp"
          exit 200
        }
        trap stop TERM INT
        r=
        ( while IFS= read -r _; do :; done; kill -TERM $$ 2>/dev/null ) <&5 >/dev/null 2>&1 &
        r=$!
        wait $f
        status=$?
        kill $r 2>/dev/null
        exit $status
        """
    }
}
