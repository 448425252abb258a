// adhLock: run the body holding the site's lock, the resource "aws-deploy-helper/<site>" of the
// Lockable Resources plugin. Every step that deploys or records takes it, and so does the
// scale-up build (our Jenkinsfile): a scale-up must never read the site's revision while a full
// deploy of it, from any job, is between deploying and recording.
//
//   adhLock(site: 'web') { ... }
//
// Re-entrant within a build: a step called inside adhLock (or inside our Jenkinsfile, whose
// pipeline-level lock option holds the same resource and says so in ADH_LOCKED_SITE) does not
// wait for itself. The site is checked by the helper first (one line for an unknown or hostile
// name), so no lock is ever made for a name that is not a site.
def call(Map opts, Closure body) {
    String site = opts.site ?: ''
    if (env.ADH_LOCKED_SITE == site && site) {
        return body()
    }
    adhRun(opts, [ADH_SITE: site], '"$ADH_HELPER" rollout plan --configured -c "$ADH_CONFIG" --site="$ADH_SITE" >/dev/null',
           [what: "adhLock: site ${site.inspect()}"])
    def result = null
    lock(resource: resource(site)) {
        withEnv(["ADH_LOCKED_SITE=${site}".toString()]) {
            result = body()
        }
    }
    return result
}

/** The lock's resource name for a site (the Jenkinsfile's pipeline-level lock uses the same). */
String resource(String site) {
    return "aws-deploy-helper/${site}".toString()
}
