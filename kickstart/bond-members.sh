# Bond members are written by MAC in `network --bondslaves=`; the installer takes interface names, which only
# this machine's kernel knows. b2ct_name_members FILE rewrites each member's MAC to the name of the interface
# that has it; when none has it, it says which MAC is missing and removes FILE, so that its %include fails
# and the installation stops instead of going on with a broken bond.
# B2CT_SYSFS exists so the tests can run this outside the installer.
b2ct_name_members() {
  local file=$1 sysfs=${B2CT_SYSFS:-/sys} dir name mac line value names member out=""
  local -A by_mac=()
  local -a members
  for dir in "$sysfs"/class/net/*; do
    name=${dir##*/}
    mac=""
    # an enslaved NIC shows its bond's MAC as its address; its own stays in perm_hwaddr
    if [ -r "$dir/bonding_slave/perm_hwaddr" ]; then
      mac=$(< "$dir/bonding_slave/perm_hwaddr")
    elif [ -r "$dir/address" ]; then
      mac=$(< "$dir/address")
    fi
    mac=${mac,,}
    [ -n "$mac" ] && [ "$mac" != 00:00:00:00:00:00 ] && by_mac[$mac]=$name
  done
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ --bondslaves=([^ ]+) ]]; then
      value=${BASH_REMATCH[1]}
      names=""
      IFS=, read -ra members <<< "$value"
      for member in "${members[@]}"; do
        if [ -z "${by_mac[$member]:-}" ]; then
          echo "b2ct: no network interface of this machine has the MAC $member of a bond member"
          rm -f "$file"
          return 1
        fi
        names=${names:+$names,}${by_mac[$member]}
      done
      line=${line/--bondslaves=$value/--bondslaves=$names}
    fi
    out+=$line$'\n'
  done < "$file"
  printf '%s' "$out" > "$file"
}
