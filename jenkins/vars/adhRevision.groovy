// adhRevision: the site's revision, through `aws-deploy-helper revision`; returns it.
//
//   String rev = adhRevision(site: 'web', action: 'resolve', revision: params.REVISION)
//   String rev = adhRevision(site: 'web', action: 'resolve', scaleUp: true)   // what the site runs
//   String rev = adhRevision(site: 'web', action: 'get')                      // recorded, or empty
//   String rev = adhRevision(site: 'web', action: 'previous', revision: '')   // for a rollback
//   adhRevision(site: 'web', action: 'record', revision: rev, rollbackFrom: '')
//
//   action    resolve (default), get, previous or record
//   revision  resolve: the one asked for (empty: the checked-out HEAD, `git rev-parse HEAD`);
//             previous: a revision the site ran to go back to (empty: the one before);
//             record: what was deployed to every instance
//   scaleUp   resolve: a scale-up build, which deploys the site's recorded revision
//   fromOutDir  record: the revision (and rollbackFrom) adhResolve wrote to outDir, for a
//             declarative pipeline's Record stage
// `record` moves what every later scale-up installs, so it runs under adhLock (re-entrant).
def call(Map opts) {
    String action = opts.action ?: 'resolve'
    String out = opts.outDir ?: 'deploy-out'
    if (action == 'record' && opts.fromOutDir) {
        opts = opts + [revision: readFile("${out}/revision").trim(),
                       rollbackFrom: fileExists("${out}/rollback_from") ? readFile("${out}/rollback_from").trim() : '']
    }
    Map values = [ADH_SITE: opts.site ?: '', ADH_REVISION: opts.revision ?: '',
                  ADH_ROLLBACK_FROM: opts.rollbackFrom ?: '']
    String what = "adhRevision ${action}"
    switch (action) {
        case 'get':
            return adhRun(opts, values, '"$ADH_HELPER" revision get -c "$ADH_CONFIG" --site="$ADH_SITE"',
                          [stdout: true, what: what])
        case 'previous':
            return adhRun(opts, values, '"$ADH_HELPER" revision previous -c "$ADH_CONFIG" --site="$ADH_SITE" --revision="$ADH_REVISION"',
                          [stdout: true, what: what])
        case 'resolve':
            if (opts.scaleUp) {
                return adhRun(opts, values, '"$ADH_HELPER" revision resolve -c "$ADH_CONFIG" --site="$ADH_SITE" --scale-up --revision="$ADH_REVISION"',
                              [stdout: true, what: what])
            }
            return adhRun(opts, values, '"$ADH_HELPER" revision resolve -c "$ADH_CONFIG" --site="$ADH_SITE" --revision="${ADH_REVISION:-$(git rev-parse HEAD)}"',
                          [stdout: true, what: what])
        case 'record':
            return adhLock(opts) {
                adhRun(opts, values, '''
                    set -- -c "$ADH_CONFIG" --site="$ADH_SITE" --revision="$ADH_REVISION"
                    if [ -n "$ADH_ROLLBACK_FROM" ]; then
                        set -- "$@" --rollback-from="$ADH_ROLLBACK_FROM"
                    fi
                    "$ADH_HELPER" revision set "$@"
                ''', [what: what])
                return opts.revision
            }
        default:
            error("adhRevision: action ${action.inspect()} is not resolve, get, previous or record")
    }
}
