# Identify this machine against the table above; for a machine the inventory does not know, ask the
# operator on the console (class, hostname, network, disk), re-asking until every answer is valid.
# Outputs: $OUT/network.ks, $OUT/storage.ks, $OUT/host.conf, %include'd by the kickstart. A known machine is
# found by any of its MACs, bond members included.
# B2CT_SYSFS, B2CT_OUT and B2CT_TTY exist so the tests can run this script outside the installer.
set -u
SYSFS=${B2CT_SYSFS:-/sys}
OUT=${B2CT_OUT:-/tmp/b2ct}
TTY=${B2CT_TTY:-/dev/tty6}
mkdir -p "$OUT"

b2ct_nics() {
  local dir name mac
  for dir in "$SYSFS"/class/net/*; do
    name=${dir##*/}
    [ "$name" = lo ] && continue
    [ -r "$dir/address" ] || continue
    mac=$(tr 'A-F' 'a-f' < "$dir/address")
    [ "$mac" = 00:00:00:00:00:00 ] && continue
    echo "$name $mac"
  done
}

host=""
while read -r _ifname mac; do
  if host=$(b2ct_lookup_mac "$mac"); then break; fi
  host=""
done < <(b2ct_nics)
if [ -z "$host" ] && [ -r "$SYSFS/class/dmi/id/product_serial" ]; then
  serial=$(tr -d ' \n' < "$SYSFS/class/dmi/id/product_serial")
  host=$(b2ct_lookup_serial "$serial") || host=""
fi
if [ -n "$host" ]; then
  b2ct_write_known "$host"
  b2ct_name_members "$OUT/network.ks" || exit 1
  echo "b2ct: this machine is $host (site $B2CT_SITE); installing unattended"
  exit 0
fi

# ---- a machine the inventory does not know: ask ----
if [ "$TTY" != "-" ]; then
  exec < "$TTY" > "$TTY" 2>&1
  chvt 6 2> /dev/null || :
fi

ANSWER=""
# ask PROMPT DEFAULT VALIDATOR: prompt until VALIDATOR accepts; the answer is left in ANSWER.
ask() {
  local prompt=$1 default=$2 check=$3 reply
  while :; do
    if [ -n "$default" ]; then printf '%s [%s]: ' "$prompt" "$default"; else printf '%s: ' "$prompt"; fi
    if ! IFS= read -r reply; then
      echo
      echo "b2ct: no answer (end of input); stopping the installation"
      exit 1
    fi
    reply=${reply:-$default}
    reply=${reply// /}
    if "$check" "$reply"; then
      ANSWER=$reply
      return 0
    fi
    echo "  invalid answer '$reply': $ERROR"
  done
}

ERROR=""
is_class() {
  case "$1" in service | worker) return 0 ;; esac
  ERROR="type service or worker"
  return 1
}
is_yes_no() {
  case "$1" in yes | no) return 0 ;; esac
  ERROR="type yes or no"
  return 1
}
is_hostname() {
  if [[ ! $1 =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$ ]]; then
    ERROR="lower-case letters, digits and '-' (dots between the labels of a full name)"
    return 1
  fi
  if b2ct_name_taken "$1"; then
    ERROR="$1 is another host of the inventory"
    return 1
  fi
}
is_ipv4() {
  local IFS=. octet
  [[ $1 =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { ERROR="not an IPv4 address"; return 1; }
  for octet in $1; do
    [ $((10#$octet)) -le 255 ] || { ERROR="octet $octet is above 255"; return 1; }
  done
}
is_ip_or_dhcp() {
  [ "$1" = dhcp ] && return 0
  is_ipv4 "$1" || return 1
  if b2ct_ip_taken "$1"; then
    ERROR="$1 belongs to another host of the inventory"
    return 1
  fi
}
is_prefix() {
  if [[ $1 =~ ^[0-9]{1,2}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 32 ]; then return 0; fi
  ERROR="a prefix length from 1 to 32"
  return 1
}
ip2int() {
  local IFS=.
  # shellcheck disable=SC2086
  set -- $1
  echo $(((10#$1 << 24) + (10#$2 << 16) + (10#$3 << 8) + 10#$4))
}
int2ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }
mask_of() { echo $(((0xffffffff << (32 - $1)) & 0xffffffff)); }
GW_IP="" GW_PREFIX=""
is_gateway() {
  [ -z "$1" ] && return 0
  is_ipv4 "$1" || return 1
  local m
  m=$(mask_of "$GW_PREFIX")
  if [ $(($(ip2int "$1") & m)) -ne $(($(ip2int "$GW_IP") & m)) ]; then
    ERROR="$1 is not in $GW_IP/$GW_PREFIX"
    return 1
  fi
  if [ "$1" = "$GW_IP" ]; then
    ERROR="the gateway cannot be this host's own address"
    return 1
  fi
}
is_dns() {
  local IFS=, server
  [ -z "$1" ] && return 0
  for server in $1; do is_ipv4 "$server" || { ERROR="$server: $ERROR"; return 1; }; done
}
NIC_NAMES=()
NIC_MACS=()
while read -r name mac; do
  NIC_NAMES+=("$name")
  NIC_MACS+=("$mac")
done < <(b2ct_nics)
if [ "${#NIC_NAMES[@]}" -eq 0 ]; then
  echo "b2ct: no network interface found; cannot install"
  exit 1
fi
is_nic() {
  local i
  for i in "${!NIC_NAMES[@]}"; do [ "${NIC_NAMES[$i]}" = "$1" ] && return 0; done
  ERROR="one of: ${NIC_NAMES[*]}"
  return 1
}
DISKS=()
for dir in "$SYSFS"/block/*; do
  name=${dir##*/}
  case "$name" in loop* | ram* | sr* | zram* | dm-* | fd* | md*) continue ;; esac
  [ "$(cat "$dir/removable" 2> /dev/null || echo 0)" = 1 ] && continue
  DISKS+=("$name")
done
is_disk() {
  local d
  for d in "${DISKS[@]}"; do [ "$d" = "$1" ] && return 0; done
  ERROR="one of: ${DISKS[*]:-no fixed disk found}"
  return 1
}
mac_of() {
  local i
  for i in "${!NIC_NAMES[@]}"; do [ "${NIC_NAMES[$i]}" = "$1" ] && echo "${NIC_MACS[$i]}"; done
}

# ask_nic NET DEFAULT_IFACE DEFAULT_PREFIX DEFAULT_GATEWAY DEFAULT_DNS DEFROUTE: one network line in NET_LINE
NET_LINE=""
ask_nic() {
  local net=$1 iface ip prefix gw dns line
  ask "  $net interface (${NIC_NAMES[*]})" "$2" is_nic
  iface=$ANSWER
  ask "  $net IPv4 address, or dhcp" "dhcp" is_ip_or_dhcp
  ip=$ANSWER
  line="network --device=$(mac_of "$iface") --onboot=yes --activate"
  if [ "$ip" = dhcp ]; then
    line="$line --bootproto=dhcp"
  else
    ask "  $net prefix length" "$3" is_prefix
    prefix=$ANSWER
    GW_IP=$ip GW_PREFIX=$prefix
    ask "  $net gateway (empty: none)" "$4" is_gateway
    gw=$ANSWER
    ask "  $net DNS servers, comma separated" "$5" is_dns
    dns=$ANSWER
    line="$line --bootproto=static --ip=$ip --netmask=$(int2ip "$(mask_of "$prefix")")"
    if [ "$6" = yes ] && [ -n "$gw" ]; then line="$line --gateway=$gw"; fi
    if [ -n "$dns" ]; then line="$line --nameserver=$dns"; fi
  fi
  [ "$6" = yes ] || line="$line --nodefroute"
  NET_LINE=$line
}

echo
echo "=== b2ct: this machine is not in the inventory of site $B2CT_SITE ==="
echo "Its interfaces:"
for i in "${!NIC_NAMES[@]}"; do echo "  ${NIC_NAMES[$i]}  ${NIC_MACS[$i]}"; done
while :; do
  ask "Host class (service or worker)" "worker" is_class
  class=$ANSWER
  ask "Hostname" "" is_hostname
  hostname=$ANSWER
  public_line=""
  has_public=no
  if [ "$class" = service ] && [ -n "$B2CT_PUBLIC_PREFIX" ] && [ "${#NIC_NAMES[@]}" -gt 1 ]; then has_public=yes; fi
  defroute=yes
  [ "$has_public" = yes ] && defroute=no
  ask_nic private "${NIC_NAMES[0]}" "$B2CT_PRIVATE_PREFIX" "$B2CT_PRIVATE_GATEWAY" "$B2CT_PRIVATE_DNS" "$defroute"
  private_line="$NET_LINE --hostname=$hostname"
  if [ "$has_public" = yes ]; then
    ask_nic public "${NIC_NAMES[1]}" "$B2CT_PUBLIC_PREFIX" "$B2CT_PUBLIC_GATEWAY" "$B2CT_PUBLIC_DNS" yes
    public_line=$NET_LINE
  fi
  ask "Install disk (everything on it is erased)" "${DISKS[0]:-}" is_disk
  disk=$ANSWER
  echo
  echo "  class=$class hostname=$hostname disk=$disk"
  echo "  $private_line"
  [ -n "$public_line" ] && echo "  $public_line"
  ask "Install with these settings? (yes/no)" "yes" is_yes_no
  [ "$ANSWER" = yes ] && break
done
[ "$TTY" != "-" ] && { chvt 1 2> /dev/null || :; }
{
  echo "$private_line"
  [ -n "$public_line" ] && echo "$public_line"
} > "$OUT/network.ks"
b2ct_storage_template "$class" | sed "s|__DISK__|$disk|g" > "$OUT/storage.ks"
cat > "$OUT/host.conf" << B2CT_EOF
B2CT_SITE=$B2CT_SITE
B2CT_HOST=$hostname
B2CT_CLASS=$class
B2CT_FRONTEND=no
B2CT_SOURCE=console
B2CT_EOF
echo "b2ct: installing $hostname as a $class host"
