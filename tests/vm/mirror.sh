# shellcheck shell=bash
# mirror_uri: prints the Debian mirror this host's apt is already configured with (the first URI of a source
# that names the bookworm suite). The project never names a registry host itself.
mirror_uri() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '
            function flush() { if (u != "" && s ~ /(^|[[:space:]])bookworm([[:space:]]|$)/) { print u; found=1; exit } u=""; s="" }
            /^[[:space:]]*$/ { flush() }
            /^URIs:/ { u=$2 }
            /^Suites:/ { s=$0 }
            END { if (!found) flush() }
        ' "$f" | head -n1)
        if [ -n "$uri" ]; then
            echo "$uri"
            return 0
        fi
    done
    if [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
        if [ -n "$uri" ]; then
            echo "$uri"
            return 0
        fi
    fi
    return 1
}
