#!/usr/bin/env bash
# Writes the per-member files of a one-machine deployment of N Talkwire members into OUT_DIR:
#   member-I.env                         TALKWIRE_PORT, SIP address, RTP range, public URL, data dir, member id
#   talkwire@I.service.d/cpu.conf        pins member I to core I-1
#   talkwire-members.list                Kamailio's dispatcher list (deploy/kamailio/)
#   nginx-upstream.conf                  the nginx upstream of the members (http context: conf.d)
#   nginx-locations.conf                 one location per member (its worker_url base) and the API on any
#                                        member (`include` it in the TLS server block)
#   cluster.env                          what all members share (edit: Redis and PostgreSQL URLs, providers)
# Usage: make-members.sh N PUBLIC_BASE_URL SIP_IP OUT_DIR
#   e.g. make-members.sh 4 https://talk.example.com 203.0.113.10 /etc/talkwire
# Member I listens for HTTP on 127.0.0.1:(8100+I) and SIP on SIP_IP:(5060+I); RTP ports 20000-29999 are split
# evenly between members. Install: copy the *.env into /etc/talkwire, the drop-in folders into /etc/systemd/system,
# the list into /etc/kamailio, the nginx files as said above; then systemctl daemon-reload.
set -euo pipefail

if [ $# -ne 4 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
N=$1; BASE=${2%/}; SIP_IP=$3; OUT=$4
[ "$N" -ge 1 ] 2>/dev/null || { echo "make-members: N must be a positive number" >&2; exit 2; }
mkdir -p "$OUT"
HOST=$(hostname -s 2>/dev/null || echo talkwire)
RTP_MIN=20000; RTP_SPAN=$(( 10000 / N ))

if [ ! -f "$OUT/cluster.env" ]; then
  cat > "$OUT/cluster.env" <<ENV
TALKWIRE_REDIS_URL=redis://127.0.0.1:6379/0
TALKWIRE_DATABASE_URL=postgresql+asyncpg://talkwire:CHANGE_ME@127.0.0.1/talkwire
TALKWIRE_HOST=127.0.0.1
TALKWIRE_MAX_CALLS=24
TALKWIRE_DRAIN_TIMEOUT=300
ENV
fi

: > "$OUT/talkwire-members.list"
{
  echo "# Talkwire members: the API on any of them, each member's worker_url under /m/I/."
  echo "upstream talkwire_api {"
  echo "    least_conn;"
  for i in $(seq 1 "$N"); do echo "    server 127.0.0.1:$((8100 + i)) max_fails=1 fail_timeout=2s;"; done
  echo "}"
} > "$OUT/nginx-upstream.conf"
: > "$OUT/nginx-locations.conf"

for i in $(seq 1 "$N"); do
  lo=$(( RTP_MIN + (i - 1) * RTP_SPAN )); hi=$(( lo + RTP_SPAN - 1 ))
  cat > "$OUT/member-$i.env" <<ENV
TALKWIRE_MEMBER_ID=$HOST-$i
TALKWIRE_PORT=$((8100 + i))
TALKWIRE_PUBLIC_URL=$BASE/m/$i
TALKWIRE_DATA_DIR=/var/lib/talkwire/member-$i
TALKWIRE_SIP_BIND=$SIP_IP:$((5060 + i))
TALKWIRE_RTP_PORT_MIN=$lo
TALKWIRE_RTP_PORT_MAX=$hi
ENV
  mkdir -p "$OUT/talkwire@$i.service.d"
  printf '[Service]\nCPUAffinity=%d\n' "$(( i - 1 ))" > "$OUT/talkwire@$i.service.d/cpu.conf"
  echo "1 sip:$SIP_IP:$((5060 + i)) 0 0 duid=$HOST-$i" >> "$OUT/talkwire-members.list"
  cat >> "$OUT/nginx-locations.conf" <<NGINX
# member $i: its worker_url (web call offers) and media URLs
location /m/$i/ {
    proxy_pass http://127.0.0.1:$((8100 + i))/;
    proxy_set_header Host \$host;
    proxy_read_timeout 30s;
}
NGINX
done
cat >> "$OUT/nginx-locations.conf" <<'NGINX'
# everything else (the control API) on any member
location / {
    proxy_pass http://talkwire_api;
    proxy_set_header Host $host;
    proxy_next_upstream error timeout http_502 http_503;
    proxy_read_timeout 30s;
}
NGINX
echo "make-members: wrote $N members into $OUT" >&2
