// adhFleet: hold the site's Auto Scaling groups still, or release them, for a declarative
// pipeline whose hold spans stages (our Jenkinsfile: a `Hold fleet` stage, released in post).
// In a step of your own, prefer adhFleetHold(site: ...) { ... }, which always releases.
//
//   adhFleet(action: 'hold', site: 'web')
//   adhFleet(action: 'release', site: 'web')   // never fails the build: the hold expires anyway
//
//   holder  whose hold (default $BUILD_URL): release lets go of this holder's hold only
def call(Map opts) {
    Map values = [ADH_SITE: opts.site ?: '', ADH_HOLDER: opts.holder ?: env.BUILD_URL ?: '']
    switch (opts.action) {
        case 'hold':
            return adhRun(opts, values, '"$ADH_HELPER" fleet hold -c "$ADH_CONFIG" --site="$ADH_SITE" --holder="$ADH_HOLDER"',
                          [what: 'adhFleet hold'])
        case 'release':
            return adhRun(opts, values, '''
                "$ADH_HELPER" fleet release -c "$ADH_CONFIG" --site="$ADH_SITE" --holder="$ADH_HOLDER" ||
                    echo "fleet release failed; the hold expires at its until and the consumer releases it"
            ''', [what: 'adhFleet release'])
        default:
            error("adhFleet: action ${String.valueOf(opts.action).inspect()} is not hold or release")
    }
}
