"""How `konbu` exits: with the command's status and every line it printed, its atexit hooks run,
but without the interpreter's teardown once torch is loaded (0.6-0.8 s of every command on a
2-core CPU); and as usual while another thread still works. Each case is a fresh Python.

    .venv/bin/python -m pytest tests/cli/test_exit.py -q
"""

import subprocess
import sys
import textwrap

# an object whose finaliser prints only if the interpreter tears itself down
PRELUDE = textwrap.dedent("""
    import atexit, sys, threading, time

    class Torn:
        def __del__(self):
            print("torn down", flush=True)
    kept = Torn()
    atexit.register(lambda: print("atexit ran"))
    from konbu.cli import leave, main
""")


def konbu_in(code: str, *argv):
    script = PRELUDE + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)


def test_a_command_keeps_its_output_and_status_but_skips_the_teardown():
    done = konbu_in("sys.argv = ['konbu', 'models']; main()")
    assert done.returncode == 0, done.stderr
    assert "chollet-mnist" in done.stdout and "pretrained backbones" in done.stdout   # all of it, flushed
    assert "atexit ran" in done.stdout and "torn down" not in done.stdout


def test_a_mistake_still_exits_2_with_its_message():
    done = konbu_in("sys.argv = ['konbu', 'train', '--epochs', '0']; main()")
    assert done.returncode == 2 and "--epochs must be at least 1" in done.stdout + done.stderr
    assert "atexit ran" in done.stdout and "torn down" not in done.stdout


def test_a_message_as_exit_code_is_printed_with_status_1():
    done = konbu_in("import torch; leave('stopped: no data')")
    assert done.returncode == 1 and "stopped: no data" in done.stderr


def test_while_another_thread_works_the_interpreter_waits_for_it():
    done = konbu_in("""
        def work():   # outlives the command: done only once the main thread has ended
            while threading.main_thread().is_alive():
                time.sleep(0.05)
            print("thread finished", flush=True)
        threading.Thread(target=work).start()
        sys.argv = ['konbu', 'models']; main()
    """)
    assert done.returncode == 0 and "thread finished" in done.stdout and "torn down" in done.stdout
