#!/bin/sh
# postfix-instance.sh — a private Postfix instance holding mail for the benchmark's nodes.
#
#   bench/postfix-instance.sh DIR SMTPD_PORT NEXTHOP_HOST NEXTHOP_PORT
#   postfix -c DIR/etc start ... postfix -c DIR/etc stop        (scripts/run-bench does both)
#
# Mail for bench.test and every *.bench.test node is relayed (relay_domains), listed for
# fast flush (fast_flush_domains) and routed by transport_maps to the transport "etrn-only",
# which is in defer_transports: it stays in the deferred queue until ETRN or `postqueue -s`,
# then goes to [NEXTHOP_HOST]:NEXTHOP_PORT (smtp-sink or a tarpit; no DNS). Postfix's own
# defaults are kept where they shape the figures (fsync of queue files, 20 connections per
# destination, connection reuse); only limits that would throttle a benchmark client are
# off. Nothing from /etc/postfix or /var/spool/postfix is read or started. The SMTP server
# listens on 127.0.0.1:SMTPD_PORT only; every service runs unchrooted.
set -eu

if [ $# -ne 4 ]; then
    echo "usage: $0 DIR SMTPD_PORT NEXTHOP_HOST NEXTHOP_PORT" >&2
    exit 2
fi
dir=$1; port=$2; hop_host=$3; hop_port=$4
case "$dir" in /*) ;; *) dir=$(pwd)/$dir ;; esac
case "$hop_host" in 127.*) ;; *) echo "$0: $hop_host is not a loopback address" >&2; exit 2 ;; esac

mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
chmod 755 "$dir" "$dir/etc"          # Postfix's daemons run as the postfix user
chown postfix "$dir/data"
touch "$dir/maillog"
chown postfix "$dir/maillog"

cf=$dir/etc
: > "$cf/main.cf"
postconf -c "$cf" -e \
    "compatibility_level = 3.6" \
    "queue_directory = $dir/queue" \
    "data_directory = $dir/data" \
    "mail_owner = postfix" \
    "setgid_group = postdrop" \
    "myhostname = relay.postfix.bench.test" \
    "mydomain = postfix.bench.test" \
    "myorigin = postfix.bench.test" \
    "mydestination =" \
    "inet_interfaces = 127.0.0.1" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "relay_domains = bench.test, .bench.test" \
    "fast_flush_domains = \$relay_domains" \
    "transport_maps = texthash:$cf/transport" \
    "defer_transports = etrn-only" \
    "smtpd_etrn_restrictions = permit_mynetworks, reject" \
    "smtpd_relay_restrictions = permit_mynetworks, reject" \
    "smtpd_recipient_restrictions =" \
    "smtpd_client_connection_rate_limit = 0" \
    "smtpd_client_message_rate_limit = 0" \
    "smtpd_client_recipient_rate_limit = 0" \
    "smtpd_client_connection_count_limit = 0" \
    "smtpd_client_event_limit_exceptions = 127.0.0.0/8" \
    "smtp_tls_security_level = none" \
    "smtpd_tls_security_level = none" \
    "smtp_dns_support_level = disabled" \
    "smtp_host_lookup = native" \
    "biff = no" \
    "alias_maps =" \
    "alias_database =" \
    "local_recipient_maps =" \
    "notify_classes =" \
    "delay_warning_time = 0" \
    "queue_run_delay = 3600s" \
    "minimal_backoff_time = 3600s" \
    "maximal_backoff_time = 3600s" \
    "default_process_limit = 100" \
    "smtpd_error_sleep_time = 0" \
    "smtpd_junk_command_limit = 1000000" \
    "in_flow_delay = 0" \
    "maillog_file_prefixes = $dir" \
    "maillog_file = $dir/maillog"

# ".bench.test" matches every node below bench.test (transport(5) parent-domain lookup).
printf 'bench.test etrn-only:[%s]:%s\n.bench.test etrn-only:[%s]:%s\n' \
    "$hop_host" "$hop_port" "$hop_host" "$hop_port" > "$cf/transport"

sed "s|@LISTEN@|127.0.0.1:$port|" "$(cd "$(dirname "$0")/.." && pwd)/fixtures/targets/postfix-master.cf" > "$cf/master.cf" ||
    { echo "$0: cannot write $cf/master.cf" >&2; exit 1; }

# Creates the queue folders with the owners and modes Postfix wants.
postfix -c "$cf" check
