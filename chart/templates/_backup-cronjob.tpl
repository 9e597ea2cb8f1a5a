{{/* A backup CronJob: one script of files/backup on the PostgreSQL image, with the backup volume. */}}
{{- define "secretid.backupCronJob" -}}
{{- $root := .root }}
{{- $job := .job }}
{{- $secret := include "secretid.credentialsSecret" $root }}
{{- $host := include "secretid.postgresHost" $root }}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "secretid.componentName" (dict "root" $root "component" $job.name) }}
  labels:
    {{- include "secretid.labels" (dict "root" $root "component" "backup") | nindent 4 }}
spec:
  schedule: {{ $job.schedule | quote }}
  timeZone: {{ $root.Values.backup.timeZone | quote }}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 2
      activeDeadlineSeconds: 21600
      template:
        metadata:
          labels:
            {{- include "secretid.labels" (dict "root" $root "component" "backup") | nindent 12 }}
        spec:
          restartPolicy: Never
          automountServiceAccountToken: false
          enableServiceLinks: false
          {{- with $root.Values.imagePullSecrets }}
          imagePullSecrets:
            {{- range . }}
            - name: {{ . }}
            {{- end }}
          {{- end }}
          {{- if eq (include "secretid.backupAccessMode" $root) "ReadWriteOnce" }}
          # A ReadWriteOnce backup volume is usable on one node only, where PostgreSQL archives
          # WAL into it: run there.
          affinity:
            podAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                - topologyKey: kubernetes.io/hostname
                  labelSelector:
                    matchLabels:
                      {{- include "secretid.selectorLabels" (dict "root" $root "component" "postgres") | nindent 22 }}
          {{- end }}
          securityContext:
            {{- include "secretid.podSecurityContext" (dict "uid" (int $root.Values.postgres.uid)) | nindent 12 }}
          containers:
            - name: {{ $job.name }}
              image: "{{ $root.Values.postgres.image.repository }}:{{ $root.Values.postgres.image.tag }}"
              imagePullPolicy: {{ $root.Values.postgres.image.pullPolicy }}
              command: ["bash", "/scripts/{{ $job.script }}"]
              env:
                - name: PGHOST
                  value: {{ $host | quote }}
                - name: PGPORT
                  value: {{ $root.Values.postgres.port | quote }}
                - name: PGUSER
                  value: {{ $job.user | quote }}
                - name: PGPASSWORD
                  valueFrom:
                    secretKeyRef:
                      name: {{ $secret }}
                      key: {{ $job.key }}
                - name: DATABASE
                  value: {{ $root.Values.postgres.database | quote }}
                - name: BACKUP_DIR
                  value: /backup
                - name: WAL_ARCHIVE_DIR
                  value: /backup/wal
                - name: KEEP_DUMPS
                  value: {{ $root.Values.backup.keepDumps | quote }}
                - name: KEEP_BASE_BACKUPS
                  value: {{ $root.Values.backup.keepBaseBackups | quote }}
              securityContext:
                {{- include "secretid.containerSecurityContext" (dict "uid" (int $root.Values.postgres.uid)) | nindent 16 }}
              resources:
                {{- toYaml $root.Values.backup.resources | nindent 16 }}
              volumeMounts:
                - name: backup
                  mountPath: /backup
                - name: scripts
                  mountPath: /scripts
                  readOnly: true
                - name: tmp
                  mountPath: /tmp
          volumes:
            - name: backup
              persistentVolumeClaim:
                claimName: {{ include "secretid.componentName" (dict "root" $root "component" "backup") }}
            - name: scripts
              configMap:
                name: {{ include "secretid.componentName" (dict "root" $root "component" "backup-scripts") }}
            - name: tmp
              emptyDir: {}
{{- end -}}
