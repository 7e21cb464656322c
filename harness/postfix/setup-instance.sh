#!/bin/sh
# setup-instance.sh — create a private Postfix instance that holds mail for ETRN nodes.
#
#   harness/postfix/setup-instance.sh DIR SMTPD_PORT SINK_HOST SINK_PORT node.test [node2.test ...]
#   postfix -c DIR/etc start ... postqueue -c DIR/etc -p ... postfix -c DIR/etc stop
#
# What it builds (Postfix's ETRN_README recipe, nothing from /etc/postfix/main.cf is used):
#   DIR/etc    config_directory  (main.cf, master.cf, transport)
#   DIR/queue  queue_directory   (created by `postfix check`, owned as Postfix wants)
#   DIR/data   data_directory
#   DIR/maillog                  the instance's log (postlogd, no syslog needed)
# The node domains are relay_domains and fast_flush_domains; transport_maps sends them to
# the transport "etrn-only", which is listed in defer_transports: mail for a node stays in
# the deferred queue (and in the flush daemon's per-site log) until an ETRN, `postqueue -s
# node` or `postqueue -f`, and then goes to [SINK_HOST]:SINK_PORT (no DNS). The SMTP server
# listens only on 127.0.0.1:SMTPD_PORT. Every service runs unchrooted, so the instance
# needs no copies of /etc files. Running it twice on the same DIR rewrites the config.
set -eu

if [ $# -lt 5 ]; then
    echo "usage: $0 DIR SMTPD_PORT SINK_HOST SINK_PORT DOMAIN..." >&2
    exit 2
fi
dir=$1; port=$2; sink_host=$3; sink_port=$4
shift 4

case "$dir" in /*) ;; *) dir=$(pwd)/$dir ;; esac
mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
# Postfix daemons run as the postfix user and must reach the queue and data folders.
chmod 755 "$dir" "$dir/etc"
chown postfix "$dir/data"
touch "$dir/maillog"
chown postfix "$dir/maillog"

domains=$(echo "$*" | tr ' ' ',')

cf=$dir/etc
: > "$cf/main.cf"
postconf -c "$cf" -e \
    "compatibility_level = 3.6" \
    "queue_directory = $dir/queue" \
    "data_directory = $dir/data" \
    "mail_owner = postfix" \
    "setgid_group = postdrop" \
    "myhostname = relay.etrnkit.test" \
    "mydomain = etrnkit.test" \
    "myorigin = etrnkit.test" \
    "mydestination =" \
    "inet_interfaces = 127.0.0.1" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "relay_domains = $domains" \
    "fast_flush_domains = \$relay_domains" \
    "transport_maps = texthash:$cf/transport" \
    "defer_transports = etrn-only" \
    "smtpd_etrn_restrictions = permit_mynetworks, reject" \
    "smtpd_relay_restrictions = permit_mynetworks, permit_auth_destination, reject" \
    "smtpd_recipient_restrictions =" \
    "smtpd_helo_required = no" \
    "smtpd_client_connection_rate_limit = 0" \
    "smtpd_client_message_rate_limit = 0" \
    "smtpd_client_recipient_rate_limit = 0" \
    "smtpd_client_connection_count_limit = 0" \
    "smtpd_client_event_limit_exceptions = 127.0.0.0/8" \
    "smtp_tls_security_level = none" \
    "smtpd_tls_security_level = none" \
    "smtp_dns_support_level = disabled" \
    "smtp_host_lookup = native" \
    "smtp_connection_cache_on_demand = yes" \
    "biff = no" \
    "alias_maps =" \
    "alias_database =" \
    "local_recipient_maps =" \
    "notify_classes =" \
    "delay_warning_time = 0" \
    "maximal_queue_lifetime = 1d" \
    "bounce_queue_lifetime = 1d" \
    "message_size_limit = 52428800" \
    "queue_run_delay = 300s" \
    "minimal_backoff_time = 300s" \
    "maximal_backoff_time = 600s" \
    "default_process_limit = 100" \
    "smtpd_error_sleep_time = 0" \
    "smtpd_soft_error_limit = 1000" \
    "smtpd_hard_error_limit = 1000" \
    "smtpd_junk_command_limit = 100000" \
    "in_flow_delay = 0" \
    "maillog_file_prefixes = $dir" \
    "maillog_file = $dir/maillog"

printf '%s\n' "$@" | while read -r d; do
    printf '%s etrn-only:[%s]:%s\n' "$d" "$sink_host" "$sink_port"
done > "$cf/transport"

# Only the services this instance needs; chroot "n" everywhere.
sed "s|@LISTEN@|127.0.0.1:$port|" "$(cd "$(dirname "$0")/../.." && pwd)/fixtures/targets/postfix-master.cf" > "$cf/master.cf" ||
    { echo "$0: cannot write $cf/master.cf" >&2; exit 1; }

# Creates the queue folders with the owners and modes Postfix wants.
postfix -c "$cf" check
