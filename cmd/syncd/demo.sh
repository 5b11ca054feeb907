#!/usr/bin/env bash
# make demo: two devices on 127.0.0.1 (discovery off) pinned to each other,
# a sample folder written on one side and shown arriving on the other.
set -euo pipefail
BIN=${BIN:-bin/syncd}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
work=$(mktemp -d /tmp/syncd-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

A="$BIN --home $work/laptop"
B="$BIN --home $work/desktop"
pa=$(free_port); pb=$(free_port)

say "create two devices"
ida=$($A init --name laptop | tail -n1)
idb=$($B init --name desktop | tail -n1)
echo "laptop  $ida"
echo "desktop $idb"

say "pin each other and share a folder"
$A peer add "$idb" --name desktop --addr "127.0.0.1:$pb"
$B peer add "$ida" --name laptop --addr "127.0.0.1:$pa"
$A folder add photos "$work/laptop-photos" --peer "$idb"
$B folder add photos "$work/desktop-photos" --peer "$ida"

say "start both daemons (logs in $work/*.log)"
$A run --listen "127.0.0.1:$pa" --discovery off 2>"$work/laptop.log" & pids+=($!)
$B run --listen "127.0.0.1:$pb" --discovery off 2>"$work/desktop.log" & pids+=($!)
for i in $(seq 50); do $B status --json >/dev/null 2>&1 && $A status --json >/dev/null 2>&1 && break; sleep 0.1; done

say "write a few files on the laptop"
mkdir -p "$work/laptop-photos/2026/holiday"
echo "a day at the sea" > "$work/laptop-photos/2026/holiday/notes.txt"
head -c 12000000 /dev/urandom > "$work/laptop-photos/2026/holiday/beach.raw"
head -c 300000 /dev/urandom > "$work/laptop-photos/2026/cat.jpg"
(cd "$work/laptop-photos" && find . -path ./.syncd -prune -o -type f -print | sort | xargs sha256sum) > "$work/want"

say "wait for them on the desktop"
start=$(date +%s.%N)
for i in $(seq 300); do
  if (cd "$work/desktop-photos" 2>/dev/null && find . -path ./.syncd -prune -o -type f -print | sort | xargs -r sha256sum) 2>/dev/null | cmp -s - "$work/want"; then
    break
  fi
  sleep 0.05
done
end=$(date +%s.%N)
if ! (cd "$work/desktop-photos" && find . -path ./.syncd -prune -o -type f -print | sort | xargs -r sha256sum) | cmp -s - "$work/want"; then
  echo "the files did not arrive; logs:"; cat "$work/laptop.log" "$work/desktop.log"; exit 1
fi
awk -v s="$start" -v e="$end" 'BEGIN { printf "all files arrived, verified by SHA-256, %.2f s after writing\n", e - s }'
(cd "$work/desktop-photos" && find . -path ./.syncd -prune -o -type f -print | sort)

say "syncd status on the desktop"
sleep 0.3
$B status

say "an edit on the desktop comes back to the laptop"
echo "and a walk in the dunes" >> "$work/desktop-photos/2026/holiday/notes.txt"
for i in $(seq 100); do grep -q dunes "$work/laptop-photos/2026/holiday/notes.txt" && break; sleep 0.05; done
cat "$work/laptop-photos/2026/holiday/notes.txt"
if ! grep -q dunes "$work/laptop-photos/2026/holiday/notes.txt"; then
  echo "the edit did not come back; logs:"; cat "$work/laptop.log" "$work/desktop.log"; exit 1
fi
echo "(the previous version is kept in $work/laptop-photos/.syncd/trash/)"

say "done; stopping the daemons and removing $work"
