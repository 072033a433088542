# Two commands on a fresh clone: `make demo` (the main job) and `make test`.
# Each creates .venv when it is missing and installs the package into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lab lessons bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mnistloc demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

# lessons/ is generated from solutions/ by nbgrader, never edited by hand (tests/test_lessons.py checks it).
LESSON_IDS := $(notdir $(wildcard solutions/[0-9]*))
NBGRADER_ENV := PATH="$(CURDIR)/$(BIN):$$PATH" MNISTLOC_COURSE_ROOT="$(CURDIR)/.lessons.tmp" \
	MNISTLOC_RELEASE_DIR="$(CURDIR)/.lessons.tmp/release"

lessons: $(STAMP)
	rm -rf .lessons.tmp && mkdir .lessons.tmp
	cd grader && for l in $(LESSON_IDS); do \
		$(NBGRADER_ENV) "$(CURDIR)/$(BIN)/nbgrader" generate_assignment $$l --no-db --log-level=WARN || exit 1; \
	done
	rm -rf lessons && mv .lessons.tmp/release lessons && rm -rf .lessons.tmp
	@echo "lessons/ regenerated from solutions/ for: $(LESSON_IDS)"

# Students: your own copy of the lessons in my-lessons/ (never overwritten, ignored by git), opened in JupyterLab.
lab: $(STAMP)
	mkdir -p my-lessons && echo '*' > my-lessons/.gitignore
	$(BIN)/mnistloc lessons my-lessons
	$(BIN)/jupyter lab my-lessons $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	$(BIN)/python bench/canvas.py

clean:
	rm -rf $(VENV) demo-output
