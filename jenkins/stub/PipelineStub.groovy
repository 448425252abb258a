// A stand-in for Jenkins' declarative pipeline, enough to run this project's Jenkinsfile on Groovy 2.4
// (the Groovy Jenkins core runs) without a Jenkins: exactly the sections, options, conditions and steps
// that Jenkinsfile uses, nothing else. Anything Jenkins has but the stub does not implement fails the
// build with "... is not supported by the stub" instead of being emulated untested; when the
// Jenkinsfile starts using it, implement it here together with a test in tests/test_jenkins_side.py.
//
//   groovy PipelineStub.groovy [-P NAME=VALUE]... [--workspace DIR] [--library NAME=DIR] JENKINSFILE   run it
//   groovy PipelineStub.groovy --list [-P NAME=VALUE]... [--library NAME=DIR] JENKINSFILE                which stages would run
//   groovy PipelineStub.groovy --check FILE...                                                          parse only (CONVERSION)
//
// Shared libraries: `@Library('NAME') _` lines load DIR/vars/*.groovy (given by --library NAME=DIR) as
// global variables, each step a var's call(...), as Jenkins does; a library the Jenkinsfile asks for
// and the stub was not given fails the build. Library code is checked as the Jenkinsfile is: an
// interpolated sh anywhere in it fails the build before any step runs.
// Locks (Lockable Resources' `lock` step and pipeline option) are real: a file lock per resource in
// $STUB_LOCK_DIR (default: the JVM's temp dir), so two stub builds of one site wait for each other.
// Credentials (withCredentials) come from the JSON file $STUB_CREDENTIALS: {"id": {"type": "aws",
// "accessKey": ..., "secretKey": ...} | {"type": "string", "secret": ...} | {"type": "sshUserPrivateKey",
// "key": ...}}; bound only inside the block, and their values are masked (****) in the console.
// With $STUB_TRACE set, every sh appends one JSON line there: its stage, script, the locks held, the
// credentials bound, the variables withEnv/withCredentials set (secrets masked) and its exit status.
//
// A parameter's value comes from -P, else from the environment variable of its name (the Jenkins
// emulator runs a build's command with its parameters in the environment), else its default.
// `sh` really runs, as Jenkins does: `/bin/sh -xe -c SCRIPT` in the workspace, with the process
// environment + parameters + environment {}. Sections and steps it does not know fail the build
// with their names, before any step runs where that can be told from the source.
// Prints `STAGE name: ran|skipped (...)|failed` per stage and `RESULT: X`; exit 0 only for SUCCESS.

import java.nio.file.FileSystems
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases

/** The Jenkinsfile is wrong for the stub (unknown section or step, bad parameter): FAILURE, nothing runs. */
class StubError extends RuntimeException { StubError(String m) { super(m) } }
/** A step failed (sh exit status, error step): the stage and the build fail. */
class StepFailure extends RuntimeException { StepFailure(String m) { super(m) } }
/** The timeout option ran out: the build is ABORTED, as Jenkins marks it. */
class BuildTimeout extends RuntimeException { BuildTimeout(String m) { super(m) } }

class Stub {
    // Steps the stub implements: the ones the Jenkinsfile calls.
    static final Set<String> STEPS = ['sh', 'archiveArtifacts', 'withEnv', 'withCredentials', 'lock', 'error', 'echo',
                                      'readFile', 'fileExists', 'pwd'] as Set
    // Steps of Jenkins and its common plugins that the stub refuses as "not supported", as opposed
    // to names nobody knows ("unknown step": a typo, or a plugin the controller may not have).
    static final Set<String> NOT_SUPPORTED_STEPS = ['script', 'dir', 'timeout',
                                                    'writeFile', 'retry', 'sleep',
                                                    'catchError', 'warnError', 'unstable', 'stash', 'unstash',
                                                    'sshagent', 'checkout', 'git', 'input',
                                                    'parallel', 'build', 'junit', 'deleteDir', 'bat',
                                                    'powershell', 'waitUntil', 'milestone', 'node', 'ws'] as Set
    // Blocks whose calls are steps, and blocks of plain Groovy (checked only when they run).
    static final Set<String> STEP_BLOCKS = ['steps', 'always'] as Set
    static final Set<String> CODE_BLOCKS = ['expression'] as Set
    // The post conditions the stub runs; Jenkins' others are refused as not supported.
    static final List<String> POST_ORDER = ['always']
    static final Set<String> NOT_SUPPORTED_POST = ['changed', 'fixed', 'regression', 'aborted', 'failure', 'success',
                                                   'unstable', 'unsuccessful', 'cleanup'] as Set
    static final Map<String, Integer> EXIT_CODES = [SUCCESS: 0, FAILURE: 1, UNSTABLE: 3, ABORTED: 4]
    // Worst first, as Jenkins' Result ordering: a build result only ever gets worse.
    static final List<String> SEVERITY = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'ABORTED']

    static Closure bind(Closure body, Object delegate) {
        Closure copy = (Closure) body.clone()
        copy.delegate = delegate
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        return copy
    }

    static Map named(Object[] args, String what) {
        if (args.length < 1 || !(args[0] instanceof Map)) throw new StubError("${what} needs named arguments")
        return (Map) args[0]
    }

    static void once(Set<String> seen, String section, String where) {
        if (!seen.add(section)) throw new StubError("${where}: more than one ${section} section")
    }

    // The loaded shared libraries' global variables (name -> its script): steps as well.
    static Map<String, Script> library = [:]

    static String stepProblem(String name) {
        if (NOT_SUPPORTED_STEPS.contains(name)) return "step '${name}' is not supported by the stub"
        return "unknown step '${name}' (the stub knows: ${(STEPS + library.keySet()).sort().join(', ')})"
    }
}

// ---- parse-only checks on the source ---------------------------------------------------------------

class SourceCheck extends CodeVisitorSupport {
    List<String> problems = []
    private List<String> stack = []
    private String file
    private boolean libraryCode  // a vars/ file: every sh is a step, wherever it is

    SourceCheck(String file, boolean libraryCode = false) { this.file = file; this.libraryCode = libraryCode }

    static org.codehaus.groovy.ast.ModuleNode parse(File source) {
        CompilationUnit unit = new CompilationUnit()
        unit.addSource(source)
        unit.compile(Phases.CONVERSION)
        return unit.AST.modules[0]
    }

    void visitMethodCallExpression(MethodCallExpression call) {
        String name = call.methodAsString
        boolean step = call.implicitThis && name != null && (inStepBlock() || (libraryCode && name == 'sh'))
        if (step) {
            if (!Stub.STEPS.contains(name) && !Stub.library.containsKey(name)) {
                problems << "${file}:${call.lineNumber}: ${Stub.stepProblem(name)}".toString()
            }
            if (name == 'sh' && interpolated(call)) {
                problems << ("${file}:${call.lineNumber}: sh with Groovy string interpolation; use a single-quoted " +
                             "script and pass values through the environment").toString()
            }
        }
        // A step's own block (dir('x') { ... }) holds steps too, so they are checked as well.
        stack.add(step ? '<step>' : (name ?: ''))
        super.visitMethodCallExpression(call)
        stack.remove(stack.size() - 1)
    }

    private boolean inStepBlock() {
        if (!stack) return false
        String outer = stack[-1]
        if (Stub.CODE_BLOCKS.contains(outer)) return false
        return outer == '<step>' || Stub.STEP_BLOCKS.contains(outer)  // when {}, stage {}: not a step context
    }

    private static boolean interpolated(MethodCallExpression call) {
        def args = call.arguments instanceof TupleExpression ? call.arguments.expressions : []
        return args.any { arg ->
            arg instanceof GStringExpression ||
                (arg instanceof MapExpression && arg.mapEntryExpressions.any {
                    it.keyExpression.text == 'script' && it.valueExpression instanceof GStringExpression
                })
        }
    }
}

// ---- the model: what the pipeline block declares -----------------------------------------------------

class StageModel {
    String name
    Closure when, steps
}

class PipelineModel {
    String agent
    Map<String, Object> options = [:]
    List<Map> parameters = []
    Closure environment
    List<StageModel> stages = []
    Map<String, Closure> post = [:]
}

class PipelineSection {
    PipelineModel model = new PipelineModel()
    private Set<String> seen = [] as Set
    static final Set<String> UNSUPPORTED = ['triggers', 'tools', 'libraries', 'input', 'matrix', 'parallel'] as Set

    def getAny() { 'any' }
    def getNone() { throw new StubError("pipeline: agent none is not supported by the stub (only agent any)") }

    void agent(Object kind) {
        Stub.once(seen, 'agent', 'pipeline')
        if (kind != 'any') throw new StubError("pipeline: agent ${kind instanceof Closure ? '{ ... }' : kind} is not supported by the stub (only agent any)")
        model.agent = kind
    }
    void options(Closure body) { Stub.once(seen, 'options', 'pipeline'); Stub.bind(body, new OptionsSection(model.options)).call() }
    void parameters(Closure body) { Stub.once(seen, 'parameters', 'pipeline'); Stub.bind(body, new ParametersSection(model.parameters)).call() }
    void environment(Closure body) { Stub.once(seen, 'environment', 'pipeline'); model.environment = body }
    void stages(Closure body) { Stub.once(seen, 'stages', 'pipeline'); Stub.bind(body, new StagesSection(model.stages)).call() }
    void post(Closure body) { Stub.once(seen, 'post', 'pipeline'); Stub.bind(body, new PostSection(model.post)).call() }

    def methodMissing(String name, args) {
        if (UNSUPPORTED.contains(name)) throw new StubError("pipeline: section '${name}' is not supported by the stub")
        throw new StubError("pipeline: unknown section '${name}'")
    }
    def propertyMissing(String name) { throw new MissingPropertyException(name, PipelineSection) }
}

class OptionsSection {
    Map<String, Object> options
    OptionsSection(Map<String, Object> options) { this.options = options }
    static final Set<String> NOT_SUPPORTED = ['timestamps', 'skipDefaultCheckout', 'disableResume',
                                              'skipStagesAfterUnstable', 'retry', 'quietPeriod', 'checkoutToSubdirectory',
                                              'preserveStashes', 'parallelsAlwaysFailFast', 'ansiColor'] as Set

    // Recorded, with no effect on a single run: the stub runs one build at a time and keeps none.
    void disableConcurrentBuilds() { options.disableConcurrentBuilds = true }
    void buildDiscarder(Object strategy) { options.buildDiscarder = strategy }
    Map logRotator(Map spec) { spec }
    void timeout(Map spec) { options.timeout = spec }
    // Lockable Resources: the whole build (stages and post) holds the resource.
    void lock(Object spec) { options.lock = Runner.resourceOf(spec) }
    def methodMissing(String name, args) {
        if (NOT_SUPPORTED.contains(name)) throw new StubError("options: option '${name}' is not supported by the stub")
        throw new StubError("options: unknown option '${name}'")
    }
    def propertyMissing(String name) { throw new MissingPropertyException(name, OptionsSection) }
}

class ParametersSection {
    List<Map> parameters
    ParametersSection(List<Map> parameters) { this.parameters = parameters }

    private void add(String type, Map spec, Object fallback) {
        if (!spec.name) throw new StubError("parameters: ${type} needs a name")
        if (parameters.any { it.name == spec.name }) throw new StubError("parameters: ${spec.name} is declared twice")
        parameters << [name: spec.name.toString(), type: type,
                       default: spec.containsKey('defaultValue') ? spec.defaultValue : fallback]
    }
    static final Set<String> NOT_SUPPORTED = ['text', 'choice', 'password', 'file', 'run', 'credentials'] as Set

    void string(Map spec) { add('string', spec, '') }
    void booleanParam(Map spec) { add('boolean', spec, false) }
    def methodMissing(String name, args) {
        if (NOT_SUPPORTED.contains(name)) throw new StubError("parameters: parameter type '${name}' is not supported by the stub")
        throw new StubError("parameters: unknown parameter type '${name}'")
    }
}

class StagesSection {
    List<StageModel> stages
    StagesSection(List<StageModel> stages) { this.stages = stages }

    void stage(String name, Closure body) {
        if (stages.any { it.name == name }) throw new StubError("stages: stage '${name}' is declared twice")
        def stage = new StageSection(name)
        Stub.bind(body, stage).call()
        if (!stage.model.steps) throw new StubError("stage '${name}': no steps")
        stages << stage.model
    }
    def methodMissing(String name, args) { throw new StubError("stages: unknown section '${name}' (only stage)") }
}

class StageSection {
    StageModel model
    private Set<String> seen = [] as Set
    static final Set<String> UNSUPPORTED = ['agent', 'options', 'input', 'tools', 'stages', 'parallel', 'matrix',
                                            'environment', 'post', 'failFast'] as Set
    StageSection(String name) { model = new StageModel(name: name) }

    void when(Closure body) {
        Stub.once(seen, 'when', "stage '${model.name}'")
        // Build the condition tree now, so an unknown condition fails before anything runs.
        def section = new WhenSection()
        Stub.bind(body, section).call()
        model.when = section.all()
    }
    void steps(Closure body) { Stub.once(seen, 'steps', "stage '${model.name}'"); model.steps = body }
    def methodMissing(String name, args) {
        if (UNSUPPORTED.contains(name)) throw new StubError("stage '${model.name}': section '${name}' is not supported by the stub")
        throw new StubError("stage '${model.name}': unknown section '${name}'")
    }
    def propertyMissing(String name) { throw new MissingPropertyException(name, StageSection) }
}

/** Collects `when` conditions as closures of a Runner, evaluated when the stage is reached. */
class WhenSection {
    List<Closure> conditions = []
    static final Set<String> UNSUPPORTED = ['branch', 'tag', 'buildingTag', 'changelog', 'changeset',
                                            'changeRequest', 'triggeredBy', 'not', 'anyOf', 'environment',
                                            'equals', 'beforeAgent', 'beforeInput', 'beforeOptions'] as Set

    Closure all() { List<Closure> cs = conditions; return { Runner r -> cs.every { it(r) } } }

    private static List<Closure> nested(Closure body) {
        def section = new WhenSection()
        Stub.bind(body, section).call()
        return section.conditions
    }
    void expression(Closure body) { conditions << { Runner r -> r.run(body) as boolean } }
    void allOf(Closure body) { List<Closure> inner = nested(body); conditions << { Runner r -> inner.every { it(r) } } }
    def methodMissing(String name, args) {
        if (UNSUPPORTED.contains(name)) throw new StubError("when: condition '${name}' is not supported by the stub")
        throw new StubError("when: unknown condition '${name}'")
    }
}

class PostSection {
    Map<String, Closure> post
    PostSection(Map<String, Closure> post) { this.post = post }

    def methodMissing(String name, args) {
        if (Stub.NOT_SUPPORTED_POST.contains(name)) throw new StubError("post: condition '${name}' is not supported by the stub")
        if (!Stub.POST_ORDER.contains(name)) {
            throw new StubError("post: unknown condition '${name}' (the stub knows: ${Stub.POST_ORDER.join(', ')})")
        }
        if (post.containsKey(name)) throw new StubError("post: more than one ${name}")
        post[name] = (Closure) args[0]
    }
}

// ---- running it ----------------------------------------------------------------------------------------

class CurrentBuild {
    String result  // null until something sets it, as in Jenkins
    String description, displayName
    int number = 1
    String getCurrentResult() { result ?: 'SUCCESS' }
    void worsen(String to) {
        if (Stub.SEVERITY.indexOf(to) > Stub.SEVERITY.indexOf(getCurrentResult())) result = to
    }
}

/** The delegate of steps {}, post conditions and when expressions: the steps and env/params. */
class Runner {
    Map<String, String> env
    Map<String, Object> params
    CurrentBuild currentBuild = new CurrentBuild()
    File cwd
    long deadlineMs = Long.MAX_VALUE
    List<String> archived = []

    def run(Closure body) { Stub.bind(body, this).call() }

    static final long CLEANUP_GRACE_MS = 60000
    String stage = ''
    List<String> locksHeld = []
    List<String> credentialsBound = []
    List<String> secrets = []  // bound secret values, masked in the console and the trace
    Map<String, String> setHere = [:]  // what withEnv / withCredentials set, for the trace

    def methodMissing(String name, args) {
        Script var = Stub.library[name]
        if (var != null) return var.invokeMethod('call', args)  // a library step: its call(...)
        throw new StubError(Stub.stepProblem(name))
    }
    def propertyMissing(String name) {
        if (Stub.library.containsKey(name)) return Stub.library[name]
        throw new MissingPropertyException(name, Runner)
    }

    String mask(String text) {
        String out = text
        secrets.findAll { it }.each { out = out.replace(it, '****') }
        return out
    }

    /** sh 'script' or sh(script:, returnStdout:, returnStatus:): runs /bin/sh -xe -c in the workspace. */
    def sh(Object spec) {
        Map opts = spec instanceof Map ? (Map) spec : [script: spec]
        def unknown = opts.keySet() - ['script', 'returnStdout', 'returnStatus']
        if (unknown) throw new StubError("sh with ${unknown.sort().join(', ')} is not supported by the stub")
        String text = opts.script?.toString()
        if (!text) throw new StubError("sh needs a script")
        if (text.startsWith('#!')) throw new StubError("sh with a #! interpreter line is not supported by the stub")
        println "+ sh"
        System.out.flush()
        ProcessBuilder builder = new ProcessBuilder(['/bin/sh', '-xe', '-c', text]).directory(cwd)
        builder.environment().clear()
        builder.environment().putAll(env.findAll { k, v -> v != null }.collectEntries { k, v -> [k, v.toString()] })
        File stdout = opts.returnStdout ? File.createTempFile('stub-sh-', '.out') : null
        if (stdout) {
            builder.redirectOutput(stdout)
        } else {
            builder.redirectErrorStream(true)  // one console, in order
        }
        Process process = builder.start()
        // The console, masked line by line (Jenkins masks bound secrets the same way).
        Thread pump = Thread.start {
            (stdout ? process.errorStream : process.inputStream).eachLine('UTF-8') { println mask(it) }
        }
        long left = deadlineMs - System.currentTimeMillis()
        if (!process.waitFor(Math.max(left, 0L), TimeUnit.MILLISECONDS)) {
            process.descendants().each { it.destroyForcibly() }
            process.destroyForcibly()
            // As Jenkins interrupts the body once: what runs after it (finally blocks, post) gets time.
            deadlineMs = System.currentTimeMillis() + CLEANUP_GRACE_MS
            throw new BuildTimeout("timeout reached while running sh")
        }
        pump.join()
        System.out.flush()
        int status = process.exitValue()
        trace(text, status)
        String captured = stdout ? stdout.getText('UTF-8') : null
        stdout?.delete()
        if (opts.returnStatus) return status
        if (status != 0) throw new StepFailure("script returned exit code ${status}")
        return captured
    }

    private void trace(String script, int status) {
        String path = System.getenv('STUB_TRACE')
        if (!path) return
        def line = groovy.json.JsonOutput.toJson([stage: stage, script: mask(script), locks: locksHeld.clone(),
                                                  credentials: credentialsBound.clone(),
                                                  env: setHere.collectEntries { k, v -> [k, mask(v ?: '')] },
                                                  status: status])
        new File(path).append(line + '\n', 'UTF-8')
    }

    /** withEnv(['NAME=value', ...]) { ... }: set for the block, then as before. */
    def withEnv(List<String> pairs, Closure body) {
        Map<String, String> values = pairs.collectEntries { String pair ->
            int eq = pair.indexOf('=')
            if (eq < 1) throw new StubError("withEnv: '${pair}' is not NAME=value")
            [pair.substring(0, eq), pair.substring(eq + 1)]
        }
        return scoped(values, [], []) { run(body) }
    }

    /** withCredentials([...]) { ... }: the bindings' variables for the block only. */
    def withCredentials(List bindings, Closure body) {
        Map store = credentialsStore()
        Map<String, String> values = [:]
        List<String> ids = [], hidden = []
        List<File> files = []
        try {
            bindings.each { Map b ->
                String id = b.credentialsId?.toString()
                Map found = (Map) store[id]
                if (found == null) throw new StepFailure("Could not find credentials entry with ID '${id}'")
                ids << id
                String kind = b.'$class' ?: b.kind
                if (kind == 'AmazonWebServicesCredentialsBinding' && found.type == 'aws') {
                    values[b.accessKeyVariable ?: 'AWS_ACCESS_KEY_ID'] = found.accessKey
                    values[b.secretKeyVariable ?: 'AWS_SECRET_ACCESS_KEY'] = found.secretKey
                    hidden << found.secretKey.toString()
                } else if (kind == 'string' && found.type == 'string') {
                    values[b.variable] = found.secret
                    hidden << found.secret.toString()
                } else if (kind == 'sshUserPrivateKey' && found.type == 'sshUserPrivateKey') {
                    File key = File.createTempFile('stub-key-', '.key')
                    key.setReadable(false, false); key.setReadable(true, true)
                    key.text = found.key
                    files << key
                    values[b.keyFileVariable] = key.path
                } else {
                    throw new StubError("withCredentials: binding ${kind} for credentials '${id}' (${found.type}) is not supported by the stub")
                }
            }
            return scoped(values, ids, hidden) { run(body) }
        } finally {
            files*.delete()  // as Jenkins removes a bound key file when the block ends
        }
    }

    static Map sshUserPrivateKey(Map spec) { spec + [kind: 'sshUserPrivateKey'] }
    static Map string(Map spec) { spec + [kind: 'string'] }

    private Map credentialsStore() {
        String path = System.getenv('STUB_CREDENTIALS')
        if (!path) return [:]
        return (Map) new groovy.json.JsonSlurper().parse(new File(path))
    }

    private def scoped(Map<String, String> values, List<String> ids, List<String> hidden, Closure body) {
        Map<String, String> before = [:]
        Set<String> absent = [] as Set
        Map<String, String> setBefore = new LinkedHashMap<>(setHere)
        values.each { k, v -> if (env.containsKey(k)) before[k] = env[k] else absent << k }
        values.each { k, v -> env[k] = v; setHere[k] = v }
        credentialsBound.addAll(ids)
        secrets.addAll(hidden)
        try {
            return body()
        } finally {
            before.each { k, v -> env[k] = v }
            absent.each { env.remove(it) }
            setHere.clear(); setHere.putAll(setBefore)
            ids.each { credentialsBound.remove(credentialsBound.lastIndexOf(it)) }
            hidden.each { secrets.remove(secrets.lastIndexOf(it)) }
        }
    }

    static String resourceOf(Object spec) {
        String name = spec instanceof Map ? ((Map) spec).resource?.toString() : spec?.toString()
        if (!name) throw new StubError("lock needs a resource")
        return name
    }

    /** lock(resource: 'name') { ... }, or lock('name'): a real file lock, so stub builds wait for each other. */
    def lock(Object spec, Closure body) {
        return holding(resourceOf(spec)) { run(body) }
    }

    def holding(String resource, Closure body) {
        File dir = new File(System.getenv('STUB_LOCK_DIR') ?: System.getProperty('java.io.tmpdir'), 'pipeline-stub-locks')
        dir.mkdirs()
        File file = new File(dir, URLEncoder.encode(resource, 'UTF-8') + '.lock')
        def channel = new RandomAccessFile(file, 'rw').channel
        try {
            println "[lock] waiting for ${resource}"
            def held = channel.lock()  // blocks while another process holds it
            println "LOCK acquired ${resource}"
            locksHeld << resource
            try {
                return body()
            } finally {
                locksHeld.remove(locksHeld.lastIndexOf(resource))
                held.release()
                println "LOCK released ${resource}"
            }
        } finally {
            channel.close()
        }
    }

    void error(Object message) { throw new StepFailure(message?.toString() ?: 'error') }
    void echo(Object message) { println mask(message?.toString() ?: '') }
    String pwd() { cwd.path }
    boolean fileExists(Object path) { new File(cwd, path.toString()).exists() }
    String readFile(Object spec) {
        String path = spec instanceof Map ? ((Map) spec).file : spec?.toString()
        File file = new File(cwd, path)
        if (!file.isFile()) throw new StepFailure("readFile: ${path} does not exist")
        return file.getText('UTF-8')
    }

    static long millis(Map spec) {
        TimeUnit unit = TimeUnit.valueOf((spec.unit ?: 'MINUTES').toString())
        return unit.toMillis(spec.time as long)
    }

    void archiveArtifacts(Object spec) {
        Map opts = spec instanceof Map ? (Map) spec : [artifacts: spec]
        String patterns = opts.artifacts.toString()
        def matchers = patterns.split(',').collect { FileSystems.default.getPathMatcher("glob:${it.trim()}") }
        def root = cwd.toPath()
        List<String> found = []
        if (Files.isDirectory(root)) {
            def stream = Files.walk(root)
            try {
                stream.iterator().each { p ->
                    def rel = root.relativize(p)
                    if (Files.isRegularFile(p) && matchers.any { it.matches(rel) }) found << rel.toString()
                }
            } finally {
                stream.close()
            }
        }
        archived << patterns
        println "ARCHIVE ${patterns}: ${found.sort().join(' ') ?: '(nothing)'}"
        if (!found && !opts.allowEmptyArchive) throw new StepFailure("archiveArtifacts: no file matches ${patterns}")
    }
}

/** The delegate of the pipeline's environment {}: NAME = value assignments into the runner's env. */
class EnvironmentSection {
    Runner runner
    EnvironmentSection(Runner runner) { this.runner = runner }
    Map getEnv() { runner.env }
    Map getParams() { runner.params }
    def propertyMissing(String name, value) { runner.env[name] = value?.toString() }
    def propertyMissing(String name) {
        if (runner.env.containsKey(name)) return runner.env[name]
        throw new MissingPropertyException(name, EnvironmentSection)
    }
    def methodMissing(String name, args) { throw new StubError("environment: '${name}()' is not supported by the stub") }
}

/** The base of a library's vars/*.groovy: a step it calls is the build's (sh, lock...) or another var. */
abstract class LibraryVarScript extends Script {
    def methodMissing(String name, args) { ((Runner) getBinding().getVariable('_runner')).invokeMethod(name, args) }
    def propertyMissing(String name) {
        if (Stub.library.containsKey(name)) return Stub.library[name]
        return ((Runner) getBinding().getVariable('_runner')).getProperty(name)
    }
}

class Libraries {
    static final java.util.regex.Pattern LINE = ~/^\s*@Library\(\s*['"]([^'"@]+)(@[^'"]*)?['"]\s*\)\s*_\s*$/

    /** The Jenkinsfile's text without its @Library lines (blank, so line numbers stay), and the names. */
    static List strip(String text) {
        List<String> names = []
        String kept = text.readLines().collect { String line ->
            def m = LINE.matcher(line)
            if (m.matches()) { names << m.group(1); return '' }
            return line
        }.join('\n')
        return [kept, names]
    }

    /** Parse DIR/vars/*.groovy of each library asked for; their checks' problems, if any. */
    static List<String> load(List<String> names, Map<String, File> given, ClassLoader loader) {
        List<String> problems = []
        names.each { String name ->
            File dir = given[name]
            if (dir == null) { problems << "library '${name}' is not configured (give --library ${name}=DIR)".toString(); return }
            File vars = new File(dir, 'vars')
            File[] files = vars.listFiles({ File f -> f.name.endsWith('.groovy') } as FileFilter)
            if (!files) { problems << "library '${name}': no ${vars}/*.groovy".toString(); return }
            files.sort { it.name }.each { File f -> Stub.library[f.name[0..-8]] = null }
            files.sort { it.name }.each { File f ->
                def check = new SourceCheck("${name}/vars/${f.name}", true)
                try {
                    def module = SourceCheck.parse(f)
                    module.statementBlock.visit(check)
                    module.methods.each { it.code?.visit(check) }  // the var's call(...) and helpers
                } catch (Exception e) {
                    problems << "${f}: does not parse: ${e.message}".toString()
                    return
                }
                problems.addAll(check.problems)
                def config = new CompilerConfiguration()
                config.scriptBaseClass = LibraryVarScript.name
                Script var = new GroovyShell(loader, new Binding(), config).parse(f)
                Stub.library[f.name[0..-8]] = var
            }
        }
        return problems
    }

    static void bind(Runner runner) {
        Stub.library.values().each { Script var ->
            var.binding.setVariable('_runner', runner)
            var.binding.setVariable('env', runner.env)
            var.binding.setVariable('params', runner.params)
            var.binding.setVariable('currentBuild', runner.currentBuild)
        }
    }
}

abstract class JenkinsfileScript extends Script {
    def pipeline(Closure body) {
        if (getBinding().variables.containsKey('_model')) throw new StubError('more than one pipeline block')
        def section = new PipelineSection()
        Stub.bind(body, section).call()
        getBinding().setVariable('_model', section.model)
    }
    def methodMissing(String name, args) {
        throw new StubError("unknown top-level step '${name}' (the stub runs declarative pipelines: pipeline { ... })")
    }
}

class Build {
    PipelineModel model
    Runner runner
    boolean failed = false

    Build(PipelineModel model, Runner runner) { this.model = model; this.runner = runner }

    static Map<String, Object> paramValues(List<Map> declared, Map<String, String> given, Map<String, String> environ) {
        def unknown = given.keySet() - declared*.name
        if (unknown) throw new StubError("no such parameter: ${unknown.sort().join(', ')}")
        Map<String, Object> values = [:]
        declared.each { Map p ->
            String raw = given.containsKey(p.name) ? given[p.name] : environ[p.name]
            if (raw == null) { values[p.name] = p.default; return }
            if (p.type == 'boolean') {
                if (!(raw.toLowerCase() in ['true', 'false'])) throw new StubError("parameter ${p.name}: '${raw}' is not true or false")
                values[p.name] = raw.toLowerCase() == 'true'
            } else {
                values[p.name] = raw
            }
        }
        return values
    }

    void start() {
        if (model.options.timeout) runner.deadlineMs = System.currentTimeMillis() + Runner.millis((Map) model.options.timeout)
        if (model.environment) Stub.bind(model.environment, new EnvironmentSection(runner)).call()
    }

    boolean wouldRun(StageModel stage) { stage.when == null || stage.when.call(runner) }

    String run() {
        attempt('environment') { start() }
        Closure whole = {
            model.stages.each { StageModel stage -> runStage(stage) }
            runner.stage = 'post'
            runPost(model.post, 'post')
        }
        if (model.options.lock) {
            runner.holding((String) model.options.lock, whole)
        } else {
            whole()
        }
        return runner.currentBuild.currentResult
    }

    private void runStage(StageModel stage) {
        if (failed) { println "STAGE ${stage.name}: skipped (earlier failure)"; return }
        println "[Pipeline] stage ${stage.name}"
        runner.stage = stage.name
        boolean ok = attempt("stage ${stage.name}") {
            if (!wouldRun(stage)) { println "STAGE ${stage.name}: skipped (when)"; return }
            runner.run(stage.steps)
            println "STAGE ${stage.name}: ran"
        }
        if (!ok) println "STAGE ${stage.name}: failed"
    }

    private void runPost(Map<String, Closure> post, String where) {
        Stub.POST_ORDER.each { String condition ->  // `always`, the one the stub runs, applies to any result
            if (post[condition]) {
                boolean ok = attempt("${where} ${condition}") { runner.run(post[condition]) }
                println "POST ${condition}: ${ok ? 'ran' : 'failed'}"
            }
        }
    }

    /** Runs one piece of the build; any failure in it fails the build, as Jenkins reports it. */
    private boolean attempt(String where, Closure body) {
        try {
            body()
            return true
        } catch (BuildTimeout e) {
            println "ERROR: ${where}: ${e.message}"
            runner.currentBuild.worsen('ABORTED')
        } catch (Exception e) {  // the interpreter's boundary: StepFailure, StubError, or Groovy errors in expressions
            println "ERROR: ${where}: ${e instanceof StepFailure || e instanceof StubError ? e.message : e.toString()}"
            runner.currentBuild.worsen('FAILURE')
        }
        failed = true
        return false
    }
}

// ---- command line ---------------------------------------------------------------------------------------

def usage = 'usage: PipelineStub.groovy [--list] [-P NAME=VALUE]... [--workspace DIR] [--library NAME=DIR]... JENKINSFILE | --check FILE...'
String mode = 'run'
Map<String, String> given = [:]
File workspace = new File('.').canonicalFile
List<String> files = []
Map<String, File> libraryDirs = [:]
def argv = (args as List<String>)
for (int i = 0; i < argv.size(); i++) {
    String arg = argv[i]
    if (arg == '--list') { mode = 'list' }
    else if (arg == '--check') { mode = 'check' }
    else if (arg == '-P' && i + 1 < argv.size()) {
        String pair = argv[++i]
        int eq = pair.indexOf('=')
        if (eq < 1) { System.err.println "-P ${pair}: expected NAME=VALUE"; System.exit(2) }
        given[pair.substring(0, eq)] = pair.substring(eq + 1)
    }
    else if (arg == '--workspace' && i + 1 < argv.size()) { workspace = new File(argv[++i]).canonicalFile }
    else if (arg == '--library' && i + 1 < argv.size()) {
        String pair = argv[++i]
        int eq = pair.indexOf('=')
        if (eq < 1) { System.err.println "--library ${pair}: expected NAME=DIR"; System.exit(2) }
        libraryDirs[pair.substring(0, eq)] = new File(pair.substring(eq + 1)).canonicalFile
    }
    else if (arg.startsWith('-')) { System.err.println usage; System.exit(2) }
    else { files << arg }
}
if (!files || (mode != 'check' && files.size() != 1)) { System.err.println usage; System.exit(2) }

if (mode == 'check') {
    boolean allOk = true
    files.each { String name ->
        try {
            SourceCheck.parse(new File(name))
            println "OK ${name}"
        } catch (Exception e) {
            allOk = false
            println "ERROR ${name}: ${e.message.readLines().findAll { it.trim() }.take(2).join(' ')}"
        }
    }
    System.exit(allOk ? 0 : 1)
}

File jenkinsfile = new File(files[0])
def fail = { String message ->
    println "ERROR: ${message}"
    println 'RESULT: FAILURE'
    System.out.flush()
    System.exit(Stub.EXIT_CODES.FAILURE)
}

def (String source, List<String> libraryNames) = Libraries.strip(jenkinsfile.getText('UTF-8'))
List<String> libraryProblems = Libraries.load(libraryNames, libraryDirs, this.class.classLoader)
if (libraryProblems) fail(libraryProblems.join('\nERROR: '))

def check = new SourceCheck(jenkinsfile.name)
try {
    SourceCheck.parse(jenkinsfile).statementBlock.visit(check)
} catch (Exception e) {
    fail("${jenkinsfile}: does not parse: ${e.message}")
}
if (check.problems) fail(check.problems.join('\nERROR: '))

def config = new CompilerConfiguration()
config.scriptBaseClass = JenkinsfileScript.name
Map<String, String> environ = System.getenv()
// The pipeline block reads params while it is declared (a lock option naming the site), before its
// parameters {} are known: a first pass with the raw values given, then the real run with the
// declared parameters' values, as Jenkins has them from the trigger.
def declare = { Map<String, Object> paramsSeen, Map<String, String> envSeen ->
    def binding = new Binding()
    binding.setVariable('env', envSeen)
    binding.setVariable('params', paramsSeen)
    Script script = new GroovyShell(this.class.classLoader, binding, config).parse(source, jenkinsfile.name)
    script.run()
    return (PipelineModel) binding.variables._model
}
PipelineModel model
Build build
try {
    model = declare(new LinkedHashMap<String, Object>(environ + given), new LinkedHashMap<String, String>(environ))
    if (model == null) throw new StubError('no pipeline block')
    if (!model.agent) throw new StubError('pipeline: no agent section')
    if (!model.stages) throw new StubError('pipeline: no stages')
    def runner = new Runner(env: new LinkedHashMap<String, String>(environ), cwd: workspace)
    runner.params = Collections.unmodifiableMap(Build.paramValues(model.parameters, given, environ))
    runner.params.each { k, v -> runner.env[k] = v?.toString() }
    runner.env.WORKSPACE = workspace.path
    if (!runner.env.BUILD_NUMBER) runner.env.BUILD_NUMBER = '1'
    model = declare(runner.params, runner.env)
    Libraries.bind(runner)
    build = new Build(model, runner)
} catch (Exception e) {  // the Jenkinsfile's own top-level code failed: report it as Jenkins would
    fail(e instanceof StubError ? e.message : e.toString())
}

if (mode == 'list') {
    build.runner.params.each { k, v -> println "PARAM ${k}=${v}" }
    try {
        build.start()
        model.stages.each { println "STAGE ${it.name}: ${build.wouldRun(it) ? 'would run' : 'would skip'}" }
    } catch (StubError e) {
        fail(e.message)
    }
    System.exit(0)
}

String result = build.run()
println "RESULT: ${result}"
System.out.flush()
System.exit(Stub.EXIT_CODES[result])
