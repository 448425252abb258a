// adhInstall: install aws-deploy-helper on the agent, or use one that is there; returns its path.
//
//   String helper = adhInstall()                         // pip install into .deploy-venv
//   String helper = adhInstall(bin: '/opt/adh/bin/aws-deploy-helper')
//
//   bin      an installed helper to use as it is (default: $HELPER_BIN; checked with --version)
//   pipSpec  what pip installs (default: $HELPER_PIP_SPEC or "aws-deploy-helper"; a path or VCS URL)
//   venv     the virtual environment, relative to the workspace (default .deploy-venv)
// Pass the result to the other steps as `helper:`, or set ADH_HELPER with withEnv.
def call(Map opts = [:]) {
    String bin = opts.bin ?: env.HELPER_BIN ?: ''
    String venv = opts.venv ?: '.deploy-venv'
    if (bin) {
        adhRun(opts + [helper: bin], [:], '"$ADH_HELPER" --version', [what: 'adhInstall'])
        return bin
    }
    adhRun(opts, [ADH_PIP_SPEC: opts.pipSpec ?: env.HELPER_PIP_SPEC ?: 'aws-deploy-helper', ADH_VENV: venv], '''
        python3 -m venv "$ADH_VENV"
        "$ADH_VENV/bin/python" -m pip install --quiet --upgrade pip
        "$ADH_VENV/bin/python" -m pip install --quiet "$ADH_PIP_SPEC"
        "$ADH_VENV/bin/aws-deploy-helper" --version
    ''', [what: 'adhInstall'])
    return "${venv}/bin/aws-deploy-helper".toString()
}
