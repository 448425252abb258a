// adhRun: the one place the library runs aws-deploy-helper. Every other step calls it.
//
//   adhRun(opts, [ADH_SITE: site, ...], 'script', [stdout: true, what: 'revision resolve'])
//
// Values reach the script only as environment variables (ADH_*): the script is a single-quoted
// string that says "$ADH_SITE", so a hostile value is one word to the shell and never shell code.
// Credentials are bound for this one script only, never written into it:
//   awsCredentialsId  an "AWS Credentials" id (CloudBees AWS Credentials plugin, as withAWS uses),
//                     bound as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; without it boto3's own
//                     chain (the agent's instance profile) applies
//   credentials       more withCredentials bindings, e.g. [sshUserPrivateKey(credentialsId: 'deploy',
//                     keyFileVariable: 'DEPLOY_SSH_KEY')]
// Common options of every step: helper (the executable; default $ADH_HELPER or aws-deploy-helper
// on PATH), config (default $DEPLOY_CONFIG or /etc/aws-deploy-helper/deploy.yml), outDir
// (default deploy-out). A failure is the helper's own line on the console and one line here.
def call(Map opts, Map values, String script, Map how = [:]) {
    String outDir = opts.outDir ?: 'deploy-out'
    List<String> environment = values.collect { k, v -> "${k}=${v == null ? '' : v}".toString() }
    environment << "ADH_HELPER=${opts.helper ?: env.ADH_HELPER ?: 'aws-deploy-helper'}".toString()
    environment << "ADH_CONFIG=${opts.config ?: env.DEPLOY_CONFIG ?: '/etc/aws-deploy-helper/deploy.yml'}".toString()
    environment << "ADH_OUT=${outDir}".toString()
    environment << "ADH_STDOUT=${outDir}/.adh-stdout".toString()
    List bindings = []
    if (opts.awsCredentialsId) {
        bindings << [$class: 'AmazonWebServicesCredentialsBinding', credentialsId: opts.awsCredentialsId,
                     accessKeyVariable: 'AWS_ACCESS_KEY_ID', secretKeyVariable: 'AWS_SECRET_ACCESS_KEY']
    }
    bindings.addAll(opts.credentials ?: [])
    String what = how.what ?: 'aws-deploy-helper'
    String wrapped = how.stdout ? 'mkdir -p "$ADH_OUT"\n{\n' + script + '\n} > "$ADH_STDOUT"' : script
    def output = null
    withEnv(environment) {
        withCredentials(bindings) {
            int status = sh(script: wrapped, returnStatus: true)
            if (status != 0) {
                error("${what} failed (exit status ${status}); the helper's message is above")
            }
            if (how.stdout) {
                output = readFile("${outDir}/.adh-stdout").trim()
            }
        }
    }
    return output
}
