{{/* Names: <release>-pc-builder, or the release name when it already says pc-builder. */}}
{{- define "pcb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pcb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pc-builder
{{ include "pcb.selectorLabels" . }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "app"). */}}
{{- define "pcb.componentSelector" -}}
app.kubernetes.io/name: pc-builder
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pcb.selectorLabels" -}}
app.kubernetes.io/name: pc-builder
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pcb.componentLabels" -}}
{{ include "pcb.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference; the tag must be a pinned one. Call with (dict "root" $ "image" .Values.app.image). */}}
{{- define "pcb.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail (printf "image %s needs a pinned tag, not %q" .image.repository $tag) -}}
{{- end -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "pcb.appService" -}}{{ include "pcb.fullname" . }}-app{{- end -}}
{{- define "pcb.nginxService" -}}{{ include "pcb.fullname" . }}-nginx{{- end -}}

{{/* Where NGINX finds its files in the pod. */}}
{{- define "pcb.nginxPaths" -}}
conf: /etc/pcbuilder/nginx
auth: /etc/pcbuilder/auth
scripts: /etc/pcbuilder/scripts
static: /srv/static
tls: /etc/pcbuilder/tls
tmp: /tmp
{{- end -}}

{{/*
The values of nginx/nginx.conf.template's ${NAME} variables in a pod, as YAML (the same
names stackctl/render.py nginx_values gives ./stack, the compose file gives the image).
*/}}
{{- define "pcb.nginxValues" -}}
{{- $p := include "pcb.nginxPaths" . | fromYaml -}}
HTTP_ADDR: "0.0.0.0"
HTTP_PORT: "8080"
HTTPS_PORT: "8443"
HTTPS_REDIRECT: {{ ternary "on" "off" .Values.nginx.httpsRedirect | quote }}
HTTPS_REDIRECT_PORT: {{ .Values.nginx.httpsRedirectPort | toString | quote }}
TLS_CERT: {{ printf "%s/tls.crt" $p.tls | quote }}
TLS_KEY: {{ printf "%s/tls.key" $p.tls | quote }}
# The official image links /var/log/nginx/error.log to /dev/stderr.
LOG_DIR: "/var/log"
NGINX_ACCESS_LOG: "/dev/stdout stack_json"
NGINX_API_RATE: "20r/s"
STATIC_DIR: {{ $p.static | quote }}
{{- if not (regexMatch "^[A-Za-z0-9.:\\[\\] -]+$" .Values.nginx.serverNames) }}
{{- fail (printf "nginx.serverNames %q: host names, IPv4 or [IPv6] addresses, space separated" .Values.nginx.serverNames) }}
{{- end }}
SERVER_NAME: {{ .Values.nginx.serverNames | quote }}
{{- if .Values.nginx.basicAuth.existingSecret }}
BASIC_AUTH_FILE: {{ printf "%s/htpasswd" $p.auth | quote }}
BASIC_AUTH_USER_FILE: {{ printf "%s/htpasswd" $p.auth | quote }}
{{- else }}
BASIC_AUTH_FILE: "off"
BASIC_AUTH_USER_FILE: "/dev/null"
{{- end }}
# One Service address: kube-proxy spreads the connections over the app pods (NGINX never
# marks a group's only server down).
UPSTREAM_SERVERS: {{ printf "server %s:3031;" (include "pcb.appService" .) | quote }}
# The Service's address is stable, so NGINX resolves nothing at run time and the resolver
# is never asked (compose re-resolves its replicas instead: nginx.conf.template, step 3).
NGINX_RESOLVER: "127.0.0.1"
NGINX_PID: {{ printf "%s/nginx.pid" $p.tmp | quote }}
NGINX_TEMP: {{ $p.tmp | quote }}
NGINX_USER: "nginx"
{{- range $k, $v := .Values.nginx.extraTemplateValues }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/*
nginx/nginx.conf.template with its ${NAME} variables replaced, like stackctl/render.py
substitute: a variable without a value fails the render instead of becoming "".
*/}}
{{- define "pcb.nginxConf" -}}
{{- $template := .Files.Get "files/nginx.conf.template" -}}
{{- if not $template -}}
{{- fail "files/nginx.conf.template (a link to nginx/nginx.conf.template) is missing or empty" -}}
{{- end -}}
{{- $values := include "pcb.nginxValues" . | fromYaml -}}
{{- $missing := list -}}
{{- range $ref := regexFindAll "\\$\\{[A-Z][A-Z0-9_]*\\}" $template -1 | uniq -}}
{{- $name := $ref | trimPrefix "${" | trimSuffix "}" -}}
{{- if not (hasKey $values $name) -}}
{{- $missing = append $missing $name -}}
{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "nginx.conf.template needs values for: %s (set nginx.extraTemplateValues)" (join ", " (sortAlpha $missing))) -}}
{{- end -}}
{{- $out := $template -}}
{{- range $name, $value := $values -}}
{{- if contains "${" (toString $value) -}}
{{- fail (printf "the value of %s must not contain ${" $name) -}}
{{- end -}}
{{- $out = replace (printf "${%s}" $name) (toString $value) $out -}}
{{- end -}}
{{- $out -}}
{{- end -}}

{{/*
The stages shared with compose: the block of observability/alloy/config.alloy between its
">>> pc-builder shared stages" and "<<< pc-builder shared stages" lines (only `declare`
blocks, so Alloy can import it as a module).
*/}}
{{- define "pcb.alloySharedStages" -}}
{{- $src := .Files.Get "files/alloy/config.alloy" -}}
{{- $block := regexFind "(?s)// >>> pc-builder shared stages.*// <<< pc-builder shared stages[^\n]*" $src -}}
{{- if not $block -}}
{{- fail "observability/alloy/config.alloy has no '>>> pc-builder shared stages' ... '<<< pc-builder shared stages' block" -}}
{{- end -}}
{{- $block -}}
{{- end -}}
