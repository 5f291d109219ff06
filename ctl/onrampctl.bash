# bash completion for onrampctl(1); installed as
# /usr/share/bash-completion/completions/onrampctl.
#
# The words an operator types, command by command. A line "WORDS|NEXT" says
# that after the words WORDS come the words NEXT; options (starting with --)
# are completed anywhere after their command. Keep it in step with the man
# pages: tests/integration/test_package.py checks every path it offers.

_onrampctl_tree='
|ocra factory show dhcp-hook probe conductor migrate retry cloud redirect --help --version
ocra|--suite --key --counter --question --password-hash --session --timestamp --help
factory|init-device --help
factory init-device|--serial --model --suite --state-dir --tcti --software --cloud-key --out --force --help
show|management-proxy dhcp alarms onboarding --json --watch --socket --help
show dhcp|learned-proxies
dhcp-hook|--lease-time --socket --help
probe|--ca --proxy --proxy-user --proxy-password-file --timeout --json --help
migrate|conductor --help
retry|--socket --help
migrate conductor|--no-wait --timeout --socket --help
conductor|ca psk router asset show alarm migrate trust-cloud audit --url --ca --token-file --json --watch --help
conductor ca|export
conductor psk|create list revoke
conductor psk list|--json
conductor router|add set delete production renew show
conductor router set|--asset-id --config
conductor router delete|--force
conductor router add|--asset-id --config --psk-file --skip-validation
conductor router production|--address --port --psk-file --root-ca
conductor migrate|--wait --revert-window --force
conductor show|assets alarms
conductor show alarms|--history --json
conductor alarm|ack clear
conductor trust-cloud|show --cert --optional
conductor asset|forget
conductor audit|--since --verify --json
cloud|org site inventory claim unclaim device token audit assertion-cert alarm --url --ca --token-file --json --watch --help
cloud org|add list delete
cloud site|add list show set delete
cloud site set|--conductor --port --psk-file --ca-file --no-ca
cloud inventory|import
cloud inventory import|--claim-code
cloud claim|--serial --claim-code --org --site
cloud device|list show events delete set
cloud device set|--asset-id
cloud assertion-cert|export
cloud alarm|list ack clear
cloud alarm list|--history --json
cloud token|add list delete
cloud audit|--since --verify --json
cloud token add|--role
redirect|token claim device audit --url --ca --token-file --json --watch --help
redirect token|add list delete
redirect audit|--since --verify --json
redirect device|register show delete
redirect claim|list show set delete
redirect claim set|--cloud-url --cloud-ca
redirect token add|--role
'

# The NEXT words of the path KEY, or nothing when KEY is not in the tree.
_onrampctl_next()
{
	local line
	while IFS= read -r line; do
		if [ -n "$line" ] && [ "${line%%|*}" = "$1" ]; then
			printf '%s' "${line#*|}"
			return 0
		fi
	done <<<"$_onrampctl_tree"
	return 1
}

_onrampctl()
{
	local cur path next extra=no i
	cur=${COMP_WORDS[COMP_CWORD]}
	path=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) path="${path:+$path }${COMP_WORDS[i]}" ;;
		esac
	done
	# Words past the longest known path are values (names, files): from there
	# on only the options of that path are offered.
	until next=$(_onrampctl_next "$path"); do
		extra=yes
		case $path in
		*" "*) path=${path% *} ;;
		"") return 0 ;;
		*) path="" ;;
		esac
	done
	if [ $extra = yes ]; then
		# The options of that path and of every path above it.
		while [ -n "$path" ]; do
			case $path in
			*" "*) path=${path% *} ;;
			*) path="" ;;
			esac
			next="$next $(_onrampctl_next "$path")"
		done
		next=$(printf '%s\n' $next | grep -- '^--' | sort -u)
	fi
	# shellcheck disable=SC2207
	COMPREPLY=($(compgen -W "$next" -- "$cur"))
}
complete -o default -F _onrampctl onrampctl
