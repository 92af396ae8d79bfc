# Turns the guest's machine.txt and runs.tsv (tests/vm/guest/bench) into BENCHMARKS.md. Called by
# tests/vm/bench with -F '\t' and the variables cmdline, started, elapsed, host_cpu, host_cpus, qemu, commit.
# POSIX awk (mawk): no asort, no gensub.

function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) {
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    if (n % 2) return a[(n + 1) / 2] + 0
    return (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { if (v != "" && v != "-" && v != "null") vals[key] = vals[key] " " v }
function med(key) { return (key in vals) ? median(vals[key]) : "" }
function f1(v) { return v == "" ? "n/a" : sprintf("%.1f", v) }
function f2(v) { return v == "" ? "n/a" : sprintf("%.2f", v) }
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : a / b }
function fr(r) { return r == "" ? "n/a" : sprintf("%.2f×", r) }
function verdict(r, limit) { return r == "" ? "not measured" : (r <= limit ? "**met**" : "**missed**") }

FNR == NR {
    i = index($0, "=")
    if (i > 0) m[substr($0, 1, i - 1)] = substr($0, i + 1)
    next
}
FNR == 1 { next } # header
{
    # part=main: every configuration but the PipeWire ones; part=pw: those only (a section of its own).
    if ((part == "pw") != ($2 ~ /^pw-/)) next
    round = $1; config = $2; fmt = $3; status = $4
    key = config SUBSEP fmt
    if (!(key in seen)) { seen[key] = 1; order[++norder] = key }
    runs[key]++
    all_rows[++nrows] = $0
    if (round + 0 > maxround) maxround = round + 0
    # weston-simple-dmabuf-v4l's steady rate (steady_ms, steady_frames: from its 11th dequeue to its last), from
    # every run, a wedged or capped one too: the pace of this Weston with a client that costs nothing.
    if (config == "weston-simple-dmabuf-v4l" && $19 + 0 > 0 && $20 + 0 >= 10) { nsteady++; steady_r[nsteady] = round; steady_f[nsteady] = fmt; steady_v[nsteady] = $20 / ($19 / 1000) }
    if (status == "capped" && $6 + 0 == 0) status = "capped before its first frame"
    if (status != "ok" && status != "capped") { bad[key] = bad[key] (bad[key] == "" ? "" : ", ") "round " round ": " status; next }
    rec[++nrec] = $0
}
END {
    if (part == "pw") { pw_report(); exit }
    first = (maxround > 1) ? 2 : 1
    for (r = 1; r <= nsteady; r++) if (steady_r[r] + 0 >= first) add("ceiling" SUBSEP steady_f[r], steady_v[r])
    # Pair each measured round's short and long run of a configuration: the window is their difference.
    for (r = 1; r <= nrec; r++) {
        split(rec[r], c, "\t")
        if (c[1] + 0 < first || (c[29] != "short" && c[29] != "long")) continue
        pk = c[1] SUBSEP c[2] SUBSEP c[3]
        pair[pk SUBSEP c[29]] = rec[r]
    }
    for (r = 1; r <= nrec; r++) {
        split(rec[r], L, "\t")
        if (L[1] + 0 < first || L[29] != "long") continue
        pk = L[1] SUBSEP L[2] SUBSEP L[3]
        key = L[2] SUBSEP L[3]
        if (!((pk SUBSEP "short") in pair)) { bad[key] = bad[key] (bad[key] == "" ? "" : ", ") "round " L[1] ": no usable short run"; continue }
        split(pair[pk SUBSEP "short"], S, "\t")
        if (S[4] == "capped") { bad[key] = bad[key] (bad[key] == "" ? "" : ", ") "round " L[1] ": short run capped"; continue }
        dtaken = L[6] - S[6]; dshown = L[7] - S[7]; dcpu = L[9] - S[9]; dmesa = L[10] - S[10]; dwall = (L[12] - S[12]) / 1000
        if (dtaken <= 0 || dshown <= 0 || dwall <= 0) { bad[key] = bad[key] (bad[key] == "" ? "" : ", ") "round " L[1] ": empty window (" dtaken " taken, " dshown " shown)"; continue }
        ok[key]++
        if (L[4] == "capped") capped_m[key]++
        win[L[1] SUBSEP key] = dcpu / dshown
        add(key SUBSEP "cpu", dcpu / dshown)
        add(key SUBSEP "taken_cpu", dcpu / dtaken)
        add(key SUBSEP "own", (dcpu - dmesa) / dshown)
        add(key SUBSEP "mesa", dmesa / dshown)
        if (L[11] != "-" && S[11] != "-") {
            dw = L[11] - S[11]
            add(key SUBSEP "weston", dw / dshown); add(key SUBSEP "sys", (dcpu + dw) / dshown)
            winsys[L[1] SUBSEP key] = (dcpu + dw) / dshown
        }
        add(key SUBSEP "taken", dtaken); add(key SUBSEP "shown", dshown); add(key SUBSEP "passed", dtaken - dshown)
        if (L[18] != "-" && S[18] != "-") add(key SUBSEP "presented_fps", (L[18] - S[18]) / dwall)
        add(key SUBSEP "fps", dshown / dwall)
        add(key SUBSEP "p50", L[13]); add(key SUBSEP "p95", L[14]); add(key SUBSEP "p99", L[15])
        add(key SUBSEP "copied", L[16])
    }
    nfmt = split(m["formats"], fmts, " ")
    label["view-passthrough"] = "`dmacam view --path passthrough`"
    label["view-gpu"] = "`dmacam view --path gpu`"
    label["view-shm"] = "`dmacam view --path shm`"
    label["weston-simple-dmabuf-v4l"] = "`weston-simple-dmabuf-v4l`"
    label["gst-dmabuf"] = "GStreamer `v4l2src io-mode=dmabuf ! waylandsink`"
    label["gst-copy"] = "GStreamer `v4l2src ! videoconvert ! BGRx ! waylandsink`"
    label["dump-dmacam"] = "`dmacam dump -o FILE`"
    label["dump-v4l2-ctl"] = "`v4l2-ctl --stream-mmap --stream-to=FILE`"
    nconf = split("view-passthrough view-gpu view-shm weston-simple-dmabuf-v4l gst-dmabuf gst-copy dump-dmacam dump-v4l2-ctl", confs, " ")
    interval_ms = 1000 / (m["fps"] + 0)

    print "# Benchmarks"
    print ""
    print "Generated by `" cmdline "`: do not edit by hand, run the command again. Every figure below is measured;"
    print "nothing is copied from elsewhere."
    print ""
    print "- **Date:** " started " (the run took " elapsed " s, one VM boot); dmacam at commit " commit ", release build."
    print "- **Host:** " host_cpu ", " host_cpus " CPUs, shared with other work while this ran."
    print "- **VM:** QEMU " qemu ", TCG (no KVM), `-smp 2 -m 4G`, CPU model \"" m["guest_cpu"] "\"; guest kernel " m["guest_kernel"] " (" m["guest_cpus"] " CPUs, " m["guest_mem_mb"] " MiB)."
    print "- **Software:** Mesa " m["mesa"] " (" m["vulkan_device"] "; Weston's GL renderer is llvmpipe), " m["weston"] ", GStreamer " m["gstreamer"] ", v4l-utils " m["v4l_utils"] "."
    print "- **Camera:** vivid `/dev/video0`, " m["size"] " at " m["fps"] " fps, OSD on, formats " m["formats"] "."
    print "- **Method:** every configuration in turn, interleaved (A A′ B B′ C C′ … then again), " m["rounds"] " rounds. Round 1 is a"
    print "  warm-up of " m["warmup_frames"] " frames per run whose figures are discarded (GStreamer's plugin registry, Mesa's shader cache,"
    print "  Weston's first-use shader compiles). In each of the other " (maxround - first + 1) " rounds every configuration runs twice in a row: a"
    print "  **short** run of " m["short"] " frames taken from the camera and a **long** one of " m["short"] " + " m["frames"] ". The long run less the short"
    print "  one is the **window**: " m["frames"] " frames in steady state, with start-up (Vulkan device and pipelines, Wayland"
    print "  connection, GStreamer's pipeline, the first frames' shader JIT) and teardown left out, for dmacam and peers"
    print "  alike. Every run is capped at " m["cap_s"] " s (the gpu path " m["gpu_cap_s"] " s) with SIGINT, a clean stop for every peer: a"
    print "  capped long run (*capped* below) gives a shorter window, counted on the frames it really handled. Tables give"
    print "  the median over the rounds and, in brackets, the spread (min–max). One headless Weston (`--renderer=gl"
    print "  --shell=kiosk`, output " m["size"] ", the camera's size, so it composites 1:1) serves the displayed runs. Before each displayed run it must be idle (under"
    print "  300 ms CPU in 1 s; under TCG its llvmpipe goes on rendering for seconds after a client has gone): the script"
    print "  waits up to 60 s for that, and restarts it if it stays busy, if it died, after a run that had to be killed,"
    print "  and after every weston-simple-dmabuf-v4l run: " m["weston_starts"] " starts in all (" (m["weston_busy_restarts"] == "" ? "n/a" : m["weston_busy_restarts"]) " of them because Weston stayed busy"
    print "  with no client). During the dump runs Weston idles without a client; its CPU is not counted there."
    print ""
    print "## How to read it"
    print ""
    print "- **CPU/frame shown** (the headline) is the window's CPU time of the process (user+sys, all threads, exact:"
    print "  `times` of the parent that waited for it, long run less short run) divided by the frames it put on the"
    print "  screen in the window (for dumps: frames written to the file). **CPU/frame taken** divides the same CPU by"
    print "  the frames taken from the camera in the window, for reference."
    print "- **Shown**: frames committed to the compositor (dmacam: submitted − replaced − discarded, from"
    print "  `--stats-json`; GStreamer: buffers given to waylandsink minus its `dropped (redraw pending)` log lines, from"
    print "  `GST_DEBUG=waylandsink:6`; weston-simple-dmabuf-v4l commits every frame it dequeues, counted by an LD_PRELOAD"
    print "  shim on VIDIOC_DQBUF that also stops it with SIGINT). All of them drop a new frame while the compositor has"
    print "  not yet asked for one (frame callback); dmacam's gpu path also passes over frames that arrive while the"
    print "  software GPU converts (newest frame wins). **Passed over** = taken − shown."
    print "- **shown fps** is the window's frames shown per second of wall time; dmacam's own presentation-feedback"
    print "  rate is in brackets. **Weston's pace** is this Weston's own rate with a client that costs nothing:"
    print "  weston-simple-dmabuf-v4l hands the camera's dma-buf over in each frame callback and does nothing else, so"
    print "  its steady rate (LD_PRELOAD shim timestamps, from its 11th frame to its last, over every measured run of"
    print "  that format, capped or wedged ones included: median and min–max) is the compositor's, printed beside every"
    print "  display row. A client near it is held back by Weston, not by itself. It is a yardstick, not a hard ceiling"
    print "  (Weston's rate varies with its backlog; GStreamer's waylandsink has been seen above it in this VM). Where"
    print "  Weston's CPU per frame shown is many times the client's, the figure is Weston's, not the client's."
    print "- In this VM the \"GPU\" is lavapipe/llvmpipe: shaders run on Mesa's threads **inside the process** (and"
    print "  inside Weston). **Mesa** is those threads' utime+stime (sampled from /proc/PID/task/*/stat every 0.2 s until"
    print "  exit): `llvmpipe-*` threads in any process, and in dmacam every thread but the main one. **own** = CPU −"
    print "  Mesa. On a machine with a GPU the Mesa share would be GPU time, not CPU time."
    print "- **Weston** is the compositor's CPU (all threads, llvmpipe included) over the window, per frame shown;"
    print "  **+Weston** adds it to the client's. YUV buffers handed to Weston are converted by Weston's (software) GL."
    print "- **Latency** (capture timestamp → presentation, p50/p95/p99 in ms, of the long run) and **copied** (CPU"
    print "  bytes copied per frame) are dmacam's own `--stats-json` figures; the peers report neither."
    print "- TCG makes everything slow and noisy: compare ratios and medians, and read the spread."
    print ""
    print "## Results (window medians, min–max in brackets)"
    print ""
    print "| configuration | format | rounds used (long run capped) | **CPU/frame shown ms** | CPU/frame taken ms | own ms | Mesa ms | Weston ms | +Weston ms | window: taken / shown / passed over | shown fps (presented) | Weston's pace fps | latency p50/p95/p99 ms | copied B/frame |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (fi = 1; fi <= nfmt; fi++) {
        fmt = fmts[fi]
        ck = "ceiling" SUBSEP fmt
        ceil = (ck in vals) ? sprintf("%.1f (%.1f–%.1f)", median(vals[ck]), lo(vals[ck]), hi(vals[ck])) : ""
        for (ci = 1; ci <= nconf; ci++) {
            key = confs[ci] SUBSEP fmt
            if (!(key in seen)) continue
            dump = (confs[ci] ~ /^dump-/)
            lat = (med(key SUBSEP "p50") == "") ? "n/a" : f1(med(key SUBSEP "p50")) " / " f1(med(key SUBSEP "p95")) " / " f1(med(key SUBSEP "p99"))
            win_s = (med(key SUBSEP "taken") == "") ? "n/a" : sprintf("%d / %d / %d", med(key SUBSEP "taken"), med(key SUBSEP "shown"), med(key SUBSEP "passed"))
            fps_s = (med(key SUBSEP "fps") == "") ? "n/a" : f1(med(key SUBSEP "fps"))
            if (med(key SUBSEP "presented_fps") != "") fps_s = fps_s " (" f1(med(key SUBSEP "presented_fps")) ")"
            copied = (med(key SUBSEP "copied") == "") ? "n/a" : sprintf("%d", med(key SUBSEP "copied"))
            cpu = spread(key SUBSEP "cpu")
            if (!(key in ok)) cpu = "n/a: no usable window (see below)"
            printf "| %s | %s | %d/%d (%d) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label[confs[ci]], fmt, ok[key] + 0, maxround - first + 1, capped_m[key] + 0, \
                cpu, f2(med(key SUBSEP "taken_cpu")), f2(med(key SUBSEP "own")), f2(med(key SUBSEP "mesa")), \
                (dump ? "—" : f2(med(key SUBSEP "weston"))), (dump ? "—" : spread(key SUBSEP "sys")), win_s, (dump ? "— (written)" : fps_s), \
                (dump ? "—" : (ceil == "" ? "n/a" : ceil)), lat, copied
        }
    }
    print ""
    print "## dmacam's CPU per frame shown relative to each peer (lower is better)"
    print ""
    print "Each ratio is taken within a round (dmacam's window against the peer's window of the same round, run minutes"
    print "apart), then the median over the rounds, with the spread (min–max) in brackets. *+Weston* compares client +"
    print "compositor CPU per frame shown."
    print ""
    print "| dmacam | format | vs weston-simple-dmabuf-v4l | vs GStreamer dmabuf | vs GStreamer copy | +Weston vs weston-simple-dmabuf-v4l | +Weston vs GStreamer dmabuf | +Weston vs GStreamer copy |"
    print "|---|---|---|---|---|---|---|---|"
    nmine = split("view-passthrough view-gpu view-shm", mine, " ")
    npeer = split("weston-simple-dmabuf-v4l gst-dmabuf gst-copy", peer, " ")
    for (fi = 1; fi <= nfmt; fi++) {
        fmt = fmts[fi]
        for (k = 1; k <= nmine; k++) {
            if (!((mine[k] SUBSEP fmt) in seen)) continue
            line = "| " label[mine[k]] " | " fmt " |"
            for (q = 1; q <= npeer; q++) line = line " " rratio(win, mine[k], peer[q], fmt) " |"
            for (q = 1; q <= npeer; q++) line = line " " rratio(winsys, mine[k], peer[q], fmt) " |"
            print line
        }
    }
    print ""
    print "| dmacam | format | CPU per frame written vs `v4l2-ctl --stream-mmap --stream-to` |"
    print "|---|---|---|"
    for (fi = 1; fi <= nfmt; fi++) {
        fmt = fmts[fi]
        if (!(("dump-dmacam" SUBSEP fmt) in seen)) continue
        printf "| %s | %s | %s |\n", label["dump-dmacam"], fmt, rratio(win, "dump-dmacam", "dump-v4l2-ctl", fmt)
    }
    print ""
    print "Both write each frame with write(2) straight from a mapping of the camera's buffer: `v4l2-ctl` from its"
    print "mmap of the V4L2 buffer, `dmacam dump` from its mapping of the exported dma-buf (the file is on the"
    print "guest's own disk, so nothing is staged: its summary says `wrote 0 (file write)`; where a file system refuses"
    print "such a write with EFAULT, it stages through its file buffer instead and says `file buffer`). dmacam does"
    print "two things more, counted in its figures: it brackets each read with DMA_BUF_IOCTL_SYNC, and it fsyncs the"
    print "file before renaming it into place (a finished file is on disk); v4l2-ctl does neither. Each run's user/sys"
    print "split is in its `times` file under the raw data's `runs/` (the children's line)."
    print ""
    print "## Targets, against this measurement"
    print ""
    print "Judged on the whole process (Mesa's software-GPU threads included), per frame shown, the strict reading."
    print ""
    print "| target | format | measured | verdict |"
    print "|---|---|---|---|"
    for (fi = 1; fi <= nfmt; fi++) {
        fmt = fmts[fi]
        r = rmed(win, "view-gpu", "gst-copy", fmt)
        printf "| gpu path CPU per frame shown ≤ 1.0× GStreamer's copy path (issue 16) | %s | %s | %s |\n", fmt, fr(r), verdict(r, 1.0)
        p = med("view-gpu" SUBSEP fmt SUBSEP "p50")
        printf "| gpu path latency p50 ≤ 5 frame intervals (%.0f ms at %s fps) (issue 16) | %s | %s | %s |\n", 5 * interval_ms, m["fps"], fmt, \
            (p == "" ? "n/a" : sprintf("%.1f ms = %.1f intervals", p, p / interval_ms)), (p == "" ? "not measured" : (p <= 5 * interval_ms ? "**met**" : "**missed**"))
        r = rmed(win, "view-passthrough", "gst-dmabuf", fmt)
        printf "| passthrough CPU per frame shown ≤ 1.0× GStreamer dmabuf (issue 7) | %s | %s | %s |\n", fmt, fr(r), verdict(r, 1.0)
        r = rmed(win, "view-gpu", "gst-copy", fmt)
        printf "| gpu path ≤ 0.10× GStreamer copy (issue 7) | %s | %s | %s |\n", fmt, fr(r), verdict(r, 0.1)
        r = rmed(win, "dump-dmacam", "dump-v4l2-ctl", fmt)
        printf "| dump CPU per frame written ≤ 1.0× v4l2-ctl (issue 17) | %s | %s | %s |\n", fmt, fr(r), verdict(r, 1.0)
    }
    nb = 0
    for (o = 1; o <= norder; o++) if (order[o] in bad) nb++
    if (nb) {
        print ""
        print "## Runs left out of the medians"
        print ""
        for (o = 1; o <= norder; o++) {
            key = order[o]
            if (!(key in bad)) continue
            split(key, kk, SUBSEP)
            print "- " label[kk[1]] " " kk[2] ": " bad[key]
        }
    }
    print ""
    print "## Every run"
    print ""
    print "Round 1 is the discarded warm-up. CPU, Mesa, Weston and wall times are totals in ms for the run; *fresh* means"
    print "Weston had just been (re)started for this run."
    print ""
    print "| round | configuration | format | run | status | frames taken | shown (presented) | total CPU | Mesa | Weston | wall | p50 | p95 | p99 | copied/frame | fresh |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (r = 1; r <= nrows; r++) {
        split(all_rows[r], c, "\t")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c[1], c[2], c[3], c[29], c[4], c[6], c[7] (c[18] != "-" && c[18] != "" ? " (" c[18] ")" : ""), c[9], c[10], c[11], c[12], c[13], c[14], c[15], c[16], \
            (c[17] == 1 ? "yes" : "")
    }
}

# rratio(ARR, A, B, FMT): the median and spread of the per-round ratios ARR[round, A, FMT] / ARR[round, B, FMT].
function rlist(arr, a, b, fmt,    rr, out) {
    out = ""
    for (rr = 1; rr <= maxround; rr++)
        if (((rr SUBSEP a SUBSEP fmt) in arr) && ((rr SUBSEP b SUBSEP fmt) in arr) && arr[rr SUBSEP b SUBSEP fmt] > 0)
            out = out " " arr[rr SUBSEP a SUBSEP fmt] / arr[rr SUBSEP b SUBSEP fmt]
    return out
}
function rmed(arr, a, b, fmt,    l) { l = rlist(arr, a, b, fmt); return l == "" ? "" : median(l) }
function rratio(arr, a, b, fmt,    l) {
    l = rlist(arr, a, b, fmt)
    if (l == "") return "n/a"
    return sprintf("**%.2f×** (%.2f–%.2f)", median(l), lo(l), hi(l))
}
function spread(key) { return (key in vals) ? sprintf("**%.2f** (%.2f–%.2f)", median(vals[key]), lo(vals[key]), hi(vals[key])) : "n/a" }

# --- The PipeWire section (part=pw) ---------------------------------------------------------------------------
function lo(list,    n, a, i, v) { n = split(list, a, " "); if (n == 0) return ""; v = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 < v) v = a[i] + 0; return v }
function hi(list,    n, a, i, v) { n = split(list, a, " "); if (n == 0) return ""; v = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > v) v = a[i] + 0; return v }
function ms(key) { return (key in vals) ? sprintf("**%.2f** (%.2f–%.2f)", median(vals[key]), lo(vals[key]), hi(vals[key])) : "n/a" }
function uniq(key,    n, a, i, out, s) {
    if (!(key in vals)) return "n/a"
    n = split(vals[key], a, " "); out = ""
    for (i = 1; i <= n; i++) if (!((key, a[i]) in s)) { s[key, a[i]] = 1; out = out (out == "" ? "" : ", ") a[i] }
    return out
}
function pw_report(    first, r, c, key, n, k, cf, name, a, b, nm) {
    first = (maxround > 1) ? 2 : 1
    for (r = 1; r <= nrec; r++) {
        split(rec[r], c, "\t")
        if (c[1] + 0 < first) continue
        key = c[2]
        n = c[6] + 0
        if (n <= 0 || c[9] == "-" || c[23] == "-") continue
        ok[key]++
        if (c[4] == "capped") capped_m[key]++
        add(key SUBSEP "frames", n)
        add(key SUBSEP "cons", c[9] / n)
        add(key SUBSEP "prod", c[23] / n)
        add(key SUBSEP "total", (c[9] + c[23]) / n)
        if (c[24] != "-") { add(key SUBSEP "prod_d", c[24] / n); add(key SUBSEP "total_d", (c[9] + c[24]) / n) }
        if (c[25] != "-") add(key SUBSEP "pw", c[25] / n)
        add(key SUBSEP "mem", c[26])
        add(key SUBSEP "wall", c[12] / 1000)
        if (c[27] != "-") { split(c[27], sc, "/"); add(key SUBSEP "copied", sc[4]); add(key SUBSEP "shared", sc[3]); add(key SUBSEP "published", sc[1]) }
    }
    nm = split("pw-dmacam pw-gst", cf, " ")
    label["pw-dmacam"] = "`dmacam serve --pipewire`"
    label["pw-gst"] = "GStreamer `v4l2src ! pipewiresink`"
    print "<!-- pipewire-bench: begin (tests/vm/bench writes this section only from a run that includes pw-dmacam or pw-gst, and keeps it otherwise) -->"
    print "## PipeWire: publishing the camera — `dmacam serve --pipewire` vs GStreamer `v4l2src ! pipewiresink`"
    print ""
    print "Generated by `" cmdline "` (" started ", the run took " elapsed " s, one VM boot; dmacam at commit " commit ", release build);"
    print "do not edit by hand. Same VM and host as above (QEMU " qemu ", TCG, 2 CPUs; host: " host_cpu ", " host_cpus " CPUs);"
    print "PipeWire " m["pipewire"] ", WirePlumber " m["wireplumber"] ", GStreamer " m["gstreamer"] ", guest kernel " m["guest_kernel"] "."
    print ""
    print "- **Camera:** vivid `/dev/video0`, YUYV " m["pw_size"] " at " m["pw_fps"] " fps (these two configurations only; NV12 is not run for them)."
    print "- **Producers** (each publishes a Video/Source node named NODE):"
    print "  - pw-dmacam: `dmacam serve -d /dev/video0 --format YUYV --size " m["pw_size"] " --fps " m["pw_fps"] " --pipewire --pipewire-name NODE`"
    print "  - pw-gst: `gst-launch-1.0 v4l2src device=/dev/video0 io-mode=userptr ! video/x-raw,format=YUY2,width=640,height=360,framerate=" m["pw_fps"] "/1 ! pipewiresink stream-properties=props,node.name=NODE,media.class=Video/Source`"
    print "    `io-mode=userptr` makes v4l2src capture into pipewiresink's own pool buffers. Without it (v4l2src's default, its own"
    print "    mmap pool) nothing flows on this PipeWire " m["pipewire"] " / GStreamer " m["gstreamer"] ": pipewiresink logs \"waiting for pool to become active\""
    print "    and the consumer times out without a buffer; `use-bufferpool=false`, `mode=provide`, a `queue` or a passthrough"
    print "    `videoconvert` before the sink changed nothing (tried in this VM)."
    print "- **Consumer** (the same for both): `gst-launch-1.0 pipewiresrc target-object=NODE num-buffers=N ! video/x-raw,format=YUY2,width=640,height=360 ! fakesink`,"
    print "  with `GST_DEBUG=pipewirepool:5,pipewiresrc:6` written to a file in tmpfs (the pool's `wrap data (TYPE …)` lines name the"
    print "  memory type it was given; `got new buffer` lines count frames when a run is capped). That logging is part of the"
    print "  consumer's CPU, equally in both configurations. WirePlumber links the consumer to the node."
    print "- **Method:** PipeWire (daemon, WirePlumber, a D-Bus session bus: `tests/vm/guest/pipewire-start`) is started once"
    print "  before the first round and stopped after the last. Interleaved rounds (pw-dmacam, pw-gst, pw-dmacam, …), " m["rounds"] " rounds;"
    print "  round 1 (" m["warmup_frames"] " frames per run) is a discarded warm-up; the other " (maxround - first + 1) " give medians and, in"
    print "  brackets, the spread (min–max over those runs). Each run: the producer starts, its node is awaited (pw-dump),"
    print "  the consumer takes N = " m["frames"] " frames (or is stopped with SIGINT after " m["cap_s"] " s: *capped*, counted on the frames it"
    print "  received), then the producer gets SIGINT (SIGKILL 20 s later: left out as a failure). pipewiresink may end by"
    print "  itself (an error exit, \"all buffers have been removed\") once its consumer has gone: that is recorded in the"
    print "  producer status below and is not a failure; its CPU is still exact."
    print "- **CPU** is user+sys of all threads. **Producer (whole run)** is exact (`times` of the subshell that waited for it)"
    print "  and includes its start-up, the wait for its node and the time until SIGINT; **producer (during)** is its"
    print "  /proc/PID/stat CPU from just before the consumer started to just after it exited (pipewiresink ends by itself"
    print "  as its consumer leaves: then its exact total less its /proc CPU read before the consumer started, i.e. its"
    print "  teardown included). **Consumer** is exact"
    print "  (`times`), start-up included. Everything is divided by the frames the consumer received. **Total** = producer"
    print "  (whole run) + consumer; **total (during)** = producer (during) + consumer. **PipeWire daemon** is the `pipewire`"
    print "  process's CPU over the consumer's run (WirePlumber not counted)."
    print ""
    print "| producer | runs used (capped) | frames consumed | producer ms/frame (whole run) | producer ms/frame (during consumer) | consumer ms/frame | **total ms/frame** | total (during) ms/frame | PipeWire daemon ms/frame | wall s | consumer's memory type |"
    print "|---|---|---|---|---|---|---|---|---|---|---|"
    for (k = 1; k <= nm; k++) {
        key = cf[k]
        if (!((key SUBSEP "YUYV") in seen)) continue
        printf "| %s | %d/%d (%d) | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label[key], ok[key] + 0, runs[key SUBSEP "YUYV"] - (first == 2 ? 1 : 0), capped_m[key] + 0, \
            (med(key SUBSEP "frames") == "" ? "n/a" : sprintf("%d", med(key SUBSEP "frames"))), \
            ms(key SUBSEP "prod"), ms(key SUBSEP "prod_d"), ms(key SUBSEP "cons"), ms(key SUBSEP "total"), ms(key SUBSEP "total_d"), \
            ms(key SUBSEP "pw"), f1(med(key SUBSEP "wall")), uniq(key SUBSEP "mem")
    }
    print ""
    print "**dmacam ÷ GStreamer** (ratio of the medians; below 1 means dmacam uses less CPU per frame consumed):"
    print ""
    print "| producer (whole run) | producer (during consumer) | consumer | **total** | total (during) | PipeWire daemon |"
    print "|---|---|---|---|---|---|"
    split("prod prod_d cons total total_d pw", parts, " ")
    line = "|"
    for (k = 1; k <= 6; k++) {
        r = ratio(med("pw-dmacam" SUBSEP parts[k]), med("pw-gst" SUBSEP parts[k]))
        line = line " " (parts[k] == "total" ? "**" fr(r) "**" : fr(r)) " |"
    }
    print line
    print ""
    print "**Memory types.** pipewiresrc was given " uniq("pw-dmacam" SUBSEP "mem") " by `dmacam serve` and " uniq("pw-gst" SUBSEP "mem") " by pipewiresink"
    print "(`wrap data (TYPE …)` in the consumer's pipewirepool log; DmaBuf = the camera's dma-bufs passed by fd, MemFd ="
    print "shared memory, MemPtr = plain memory of the producer's pool that PipeWire shares with the consumer; here v4l2src"
    print "captures into those buffers itself, through USERPTR)."
    if (med("pw-dmacam" SUBSEP "published") != "")
        printf "`dmacam serve`'s final line (median over the measured runs): %d frames published, %d in the camera's own buffers, **%d copied**.\n", \
            med("pw-dmacam" SUBSEP "published"), med("pw-dmacam" SUBSEP "shared"), med("pw-dmacam" SUBSEP "copied")
    nb = 0
    for (o = 1; o <= norder; o++) if (order[o] in bad) nb++
    if (nb) {
        print ""
        print "Runs that did not finish cleanly (left out):"
        print ""
        for (o = 1; o <= norder; o++) {
            key = order[o]
            if (!(key in bad)) continue
            split(key, kk, SUBSEP)
            print "- " label[kk[1]] ": " bad[key]
        }
    }
    print ""
    print "Every run (round 1 is the discarded warm-up; CPU and wall in ms for the run; *serve* is dmacam's final line as"
    print "published/taken/own buffers/copied/copied bytes/not published):"
    print ""
    print "| round | producer | status | frames consumed | consumer CPU | producer CPU (whole run) | producer CPU (during) | PipeWire daemon | consumer wall | consumer's memory | serve | producer status |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (r = 1; r <= nrows; r++) {
        split(all_rows[r], c, "\t")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c[1], c[2], c[4], c[6], c[9], c[23], c[24], c[25], c[12], c[26], c[27], c[28]
    }
    print "<!-- pipewire-bench: end -->"
}
